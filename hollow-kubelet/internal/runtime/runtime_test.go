package runtime

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

type fixture struct {
	t      *testing.T
	r      *Runtime
	logDir string
	simDir string
	sb     string
	sbCfg  *runtimeapi.PodSandboxConfig
}

func newFixture(t *testing.T, annotations map[string]string) *fixture {
	t.Helper()
	dir := t.TempDir()
	f := &fixture{t: t, logDir: filepath.Join(dir, "pods", "ns_pod_uid"), simDir: filepath.Join(dir, "sim")}
	if err := os.MkdirAll(f.logDir, 0o755); err != nil {
		t.Fatal(err)
	}
	f.r = New(nil, f.simDir, filepath.Join(dir, "state"), "node")
	f.sbCfg = &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: "pod", Namespace: "ns", Uid: "uid-1"},
		Annotations:  annotations,
		LogDirectory: f.logDir,
	}
	sb, err := f.r.RunPodSandbox(context.Background(), f.sbCfg, "")
	if err != nil {
		t.Fatal(err)
	}
	f.sb = sb
	return f
}

func (f *fixture) start(name string, attempt uint32) (string, string) {
	f.t.Helper()
	ctx := context.Background()
	rel := filepath.Join(name, fmt.Sprintf("%d.log", attempt))
	_ = os.MkdirAll(filepath.Join(f.logDir, name), 0o755)
	id, err := f.r.CreateContainer(ctx, f.sb, &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: name, Attempt: attempt},
		Image:    &runtimeapi.ImageSpec{Image: "busybox", UserSpecifiedImage: "busybox"},
		LogPath:  rel,
	}, f.sbCfg)
	if err != nil {
		f.t.Fatal(err)
	}
	if err := f.r.StartContainer(ctx, id); err != nil {
		f.t.Fatal(err)
	}
	path := filepath.Join(f.logDir, rel)
	if _, err := os.Stat(path); err != nil {
		// With a rotation fault the container may already have rotated
		// (rename, then a new file: the kubelet's own order) between
		// StartContainer's return and this check; a rotated sibling proves
		// the file existed.
		if rotated, _ := filepath.Glob(path + ".*"); len(rotated) == 0 {
			f.t.Fatalf("log file must exist when StartContainer returns: %v", err)
		}
	}
	return id, path
}

func (f *fixture) wait(id string) *runtimeapi.ContainerStatus {
	f.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		st, err := f.r.ContainerStatus(context.Background(), id, false)
		if err != nil {
			f.t.Fatal(err)
		}
		if st.Status.State == runtimeapi.ContainerState_CONTAINER_EXITED {
			return st.Status
		}
		time.Sleep(10 * time.Millisecond)
	}
	f.t.Fatal("container did not exit")
	return nil
}

var recordRe = regexp.MustCompile(`^(\S+) (stdout|stderr) ([PF]) (.*)$`)

func TestRunWritesCRILogAndRecording(t *testing.T) {
	f := newFixture(t, map[string]string{
		"sim.logtail.dev/script": `{"containers":{"app":{"segments":[{"lines":2,"lineBytes":20000},{"text":"oops\n","stream":"stderr"},{"text":"tail"}],"exitCodes":[3,0]}}}`,
		"sim.logtail.dev/faults": `{"timestampOffset":"-03:30"}`,
	})
	id, path := f.start("app", 0)
	st := f.wait(id)
	if st.ExitCode != 3 || st.Reason != "Error" || st.LogPath != path {
		t.Fatalf("status %+v", st)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	var tags, streams []string
	for _, l := range lines {
		m := recordRe.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("not a CRI record: %.80q", l)
		}
		if !strings.HasSuffix(m[1], "-03:30") || len(m[1]) != 35 {
			t.Fatalf("timestamp %q", m[1])
		}
		if _, err := time.Parse(time.RFC3339Nano, m[1]); err != nil {
			t.Fatal(err)
		}
		tags = append(tags, m[3])
		streams = append(streams, m[2])
	}
	// 20000-byte lines: a 16384-byte P chunk and an F rest each; then stderr; then the last line as P.
	if strings.Join(tags, "") != "PFPFFP" || streams[4] != "stderr" {
		t.Fatalf("tags %v streams %v", tags, streams)
	}
	rec, err := os.ReadFile(filepath.Join(f.simDir, "ns", "pod", "app.log"))
	if err != nil {
		t.Fatal(err)
	}
	if len(rec) != 2*20000+5+4 || !strings.HasSuffix(string(rec), "oops\ntail") {
		t.Fatalf("recording %d bytes", len(rec))
	}

	// The next run: the recording of run 0 becomes app.0.log.
	id, _ = f.start("app", 1)
	if st := f.wait(id); st.ExitCode != 0 || st.Reason != "Completed" {
		t.Fatalf("run 1 status %+v", st)
	}
	if _, err := os.Stat(filepath.Join(f.simDir, "ns", "pod", "app.0.log")); err != nil {
		t.Fatal(err)
	}
}

func TestStopContainer(t *testing.T) {
	f := newFixture(t, map[string]string{
		"sim.logtail.dev/script": `{"containers":{"app":{"lines":1,"holdSeconds":-1},"side":{"lines":1,"holdSeconds":-1,"exitCode":7}}}`,
	})
	id, _ := f.start("app", 0)
	t0 := time.Now()
	if err := f.r.StopContainer(context.Background(), id, 1); err != nil {
		t.Fatal(err)
	}
	st := f.wait(id)
	if st.ExitCode != 137 || time.Since(t0) < 900*time.Millisecond {
		t.Fatalf("exit %d after %v", st.ExitCode, time.Since(t0))
	}
	// A sidecar exits on SIGTERM with its script's exit code.
	f.r.mu.Lock()
	f.r.sandboxes[f.sb].sidecars["side"] = true
	f.r.mu.Unlock()
	id, _ = f.start("side", 0)
	t0 = time.Now()
	if err := f.r.StopContainer(context.Background(), id, 30); err != nil {
		t.Fatal(err)
	}
	if st := f.wait(id); st.ExitCode != 7 || time.Since(t0) > 2*time.Second {
		t.Fatalf("sidecar exit %d after %v", st.ExitCode, time.Since(t0))
	}
}

func TestRotationFaultAndRefusedFaults(t *testing.T) {
	f := newFixture(t, map[string]string{
		"sim.logtail.dev/script": `{"containers":{"app":{"lines":30,"lineBytes":100}}}`,
		"sim.logtail.dev/faults": `{"containerLogMaxSize":1000}`,
	})
	id, path := f.start("app", 0)
	f.wait(id)
	rotated, _ := filepath.Glob(path + ".*")
	if len(rotated) == 0 || !regexp.MustCompile(`\.log\.\d{8}-\d{6}$`).MatchString(rotated[0]) {
		t.Fatalf("rotated files %v", rotated)
	}
	// Each file ends with the record that reached the size: the 8th record of
	// 140 bytes (980 < 1000 <= 1120), as in the simulator's LogStore.
	b, _ := os.ReadFile(rotated[0])
	if len(b) != 8*140 {
		t.Fatalf("rotated file of %d bytes", len(b))
	}

	g := newFixture(t, map[string]string{"sim.logtail.dev/faults": `{"http500Count":1}`})
	_, err := g.r.CreateContainer(context.Background(), g.sb, &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: "app"}, Image: &runtimeapi.ImageSpec{Image: "busybox"}, LogPath: "app/0.log",
	}, g.sbCfg)
	if err == nil || !strings.Contains(err.Error(), `InvalidSimScript: sim.logtail.dev/faults: "http500Count" is a simulator-only fault`) {
		t.Fatalf("err %v", err)
	}
}

func TestImages(t *testing.T) {
	for in, want := range map[string]string{
		"busybox":                    "docker.io/library/busybox:latest",
		"busybox:1.36":               "docker.io/library/busybox:1.36",
		"foo/bar":                    "docker.io/foo/bar:latest",
		"registry.k8s.io/pause:3.10": "registry.k8s.io/pause:3.10",
		"localhost:5000/x":           "localhost:5000/x:latest",
	} {
		if got := normalizeImage(in); got != want {
			t.Errorf("%s: %s, want %s", in, got, want)
		}
	}
	if got := repoDigest("registry.k8s.io/pause:3.10"); !strings.HasPrefix(got, "registry.k8s.io/pause@sha256:") {
		t.Error(got)
	}
}
