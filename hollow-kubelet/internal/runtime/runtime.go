// Package runtime is an in-process CRI runtime whose containers play the node
// simulator's script annotation instead of running a process. It implements
// k8s.io/cri-api's RuntimeService and ImageManagerService, so the kubelet's
// own code (kuberuntime, PLEG, status manager, log serving, log rotation,
// garbage collection) drives it exactly as it drives containerd.
package runtime

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"logtail.dev/hollow-kubelet/internal/script"
)

const (
	// RuntimeName is what the kubelet puts before "://" in container IDs;
	// the simulator's IDs look like containerd's too.
	RuntimeName    = "containerd"
	RuntimeVersion = "0.1.0-logtail-scripted" // semver, or the Node shows "Unknown"
	criAPIVersion  = "v1"
)

// Faults the runtime honours itself, or that the launcher's proxy in front
// of the kubelet port honours. Every other key the simulator knows is refused.
var honouredFaults = map[string]bool{
	"containerLogMaxSize": true,
	"timestampOffset":     true,
	"deleteAfterSeconds":  true,
	"deleteGraceSeconds":  true,
	"cutEveryBytes":       true, // the TLS proxy in front of the kubelet port
	"stallAfterBytes":     true, // the TLS proxy in front of the kubelet port
	"endStreamAfterBytes": true, // the TLS proxy in front of the kubelet port
}

// RefusedFaults lists the simulator's fault keys a real kubelet cannot be made to honour.
var RefusedFaults = []string{"tlsAlertSeconds", "terminatedDelaySeconds", "http500Count"}

type sandbox struct {
	status *runtimeapi.PodSandboxStatus
	config *runtimeapi.PodSandboxConfig

	// Read once per sandbox, at its first container.
	resolved  bool
	names     []string // init and regular containers; nil if the pod could not be read
	sidecars  map[string]bool
	pscript   *script.PodScript
	faults    *script.Faults
	invalid   string
	zone      *time.Location
	deleteSet bool
}

type container struct {
	status  *runtimeapi.ContainerStatus
	sandbox string
	podNS   string
	podName string
	podUID  string
	script  *script.ContainerScript
	sidecar bool
	logMax  int64
	zone    *time.Location
	log     *logWriter
	killCh  chan int
	done    chan struct{}
}

// Runtime is the scripted CRI runtime.
type Runtime struct {
	mu         sync.Mutex
	sandboxes  map[string]*sandbox
	containers map[string]*container
	images     map[string]*runtimeapi.Image
	imageNames map[string]string // image ID -> name
	// The attempt recorded last as CONTAINER.log, per ns/pod/container.
	recorded map[string]int
	deleted  map[string]bool // pod UIDs whose deleteAfterSeconds fault is armed
	kube     kubernetes.Interface
	simDir   string
	stateDir string // survives a restart of this process (under the kubelet root dir)
	nextIP   uint32
	nodeName string
	stopping bool
}

// New makes the runtime; stateDir keeps which pod UID owns each recording
// directory, so that a restarted hollow kubelet does not wipe the recordings
// of a pod it continues.
func New(kube kubernetes.Interface, simDir, stateDir, nodeName string) *Runtime {
	return &Runtime{
		stateDir:   stateDir,
		sandboxes:  map[string]*sandbox{},
		containers: map[string]*container{},
		images:     map[string]*runtimeapi.Image{},
		imageNames: map[string]string{},
		recorded:   map[string]int{},
		deleted:    map[string]bool{},
		kube:       kube,
		simDir:     simDir,
		nodeName:   nodeName,
	}
}

func randomID() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func notFound(what, id string) error {
	return status.Errorf(codes.NotFound, "%s %q not found", what, id)
}

// ---- RuntimeVersioner, status --------------------------------------------

func (r *Runtime) Version(_ context.Context, _ string) (*runtimeapi.VersionResponse, error) {
	return &runtimeapi.VersionResponse{Version: "0.1.0", RuntimeName: RuntimeName, RuntimeVersion: RuntimeVersion, RuntimeApiVersion: criAPIVersion}, nil
}

func (r *Runtime) Status(_ context.Context, _ bool) (*runtimeapi.StatusResponse, error) {
	return &runtimeapi.StatusResponse{Status: &runtimeapi.RuntimeStatus{Conditions: []*runtimeapi.RuntimeCondition{
		{Type: runtimeapi.RuntimeReady, Status: true},
		{Type: runtimeapi.NetworkReady, Status: true},
	}}}, nil
}

func (r *Runtime) RuntimeConfig(_ context.Context) (*runtimeapi.RuntimeConfigResponse, error) {
	return &runtimeapi.RuntimeConfigResponse{}, nil
}

func (r *Runtime) UpdateRuntimeConfig(_ context.Context, _ *runtimeapi.RuntimeConfig) error {
	return nil
}

func (r *Runtime) Close(_ context.Context) error { return nil }

// ---- sandboxes ------------------------------------------------------------

func (r *Runtime) RunPodSandbox(_ context.Context, config *runtimeapi.PodSandboxConfig, runtimeHandler string) (string, error) {
	md := config.GetMetadata()
	if md == nil {
		return "", status.Error(codes.InvalidArgument, "sandbox config has no metadata")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	id := randomID()
	r.nextIP++
	ip := fmt.Sprintf("10.245.%d.%d", (r.nextIP/250)%250, r.nextIP%250+2)
	r.sandboxes[id] = &sandbox{
		config: config,
		status: &runtimeapi.PodSandboxStatus{
			Id:        id,
			Metadata:  md,
			State:     runtimeapi.PodSandboxState_SANDBOX_READY,
			CreatedAt: time.Now().UnixNano(),
			Network:   &runtimeapi.PodSandboxNetworkStatus{Ip: ip},
			// The kubelet compares the namespace options with the pod's to
			// decide whether the sandbox changed (podSandboxChanged).
			Linux: &runtimeapi.LinuxPodSandboxStatus{Namespaces: &runtimeapi.Namespace{
				Options: config.GetLinux().GetSecurityContext().GetNamespaceOptions(),
			}},
			Labels:         config.Labels,
			Annotations:    config.Annotations,
			RuntimeHandler: runtimeHandler,
		},
	}
	if r.simDir != "" && r.newPodRecording(md) {
		// A new pod under a name starts with an empty recording directory.
		dir := filepath.Join(r.simDir, md.Namespace, md.Name)
		_ = os.RemoveAll(dir)
		_ = os.MkdirAll(dir, 0o755)
		prefix := md.Namespace + "/" + md.Name + "/"
		for k := range r.recorded {
			if strings.HasPrefix(k, prefix) {
				delete(r.recorded, k)
			}
		}
	}
	return id, nil
}

// newPodRecording records that the pod's recording directory belongs to this
// pod UID and says whether it belonged to another pod (or none) before.
func (r *Runtime) newPodRecording(md *runtimeapi.PodSandboxMetadata) bool {
	if r.stateDir == "" {
		return md.Attempt == 0
	}
	owner := filepath.Join(r.stateDir, "recording-owners", md.Namespace, md.Name)
	if b, err := os.ReadFile(owner); err == nil && string(b) == md.Uid {
		return false
	}
	_ = os.MkdirAll(filepath.Dir(owner), 0o755)
	_ = os.WriteFile(owner, []byte(md.Uid), 0o644)
	return true
}

func (r *Runtime) StopPodSandbox(_ context.Context, id string) error {
	r.mu.Lock()
	s, ok := r.sandboxes[id]
	if !ok {
		r.mu.Unlock()
		return nil // containerd: stopping a missing sandbox is not an error
	}
	s.status.State = runtimeapi.PodSandboxState_SANDBOX_NOTREADY
	var running []*container
	for _, c := range r.containers {
		if c.sandbox == id && c.status.State == runtimeapi.ContainerState_CONTAINER_RUNNING {
			running = append(running, c)
		}
	}
	r.mu.Unlock()
	for _, c := range running {
		c.kill(137)
		<-c.done
	}
	return nil
}

func (r *Runtime) RemovePodSandbox(ctx context.Context, id string) error {
	if err := r.StopPodSandbox(ctx, id); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for cid, c := range r.containers {
		if c.sandbox == id {
			delete(r.containers, cid)
		}
	}
	delete(r.sandboxes, id)
	return nil
}

func (r *Runtime) PodSandboxStatus(_ context.Context, id string, _ bool) (*runtimeapi.PodSandboxStatusResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s, ok := r.sandboxes[id]
	if !ok {
		return nil, notFound("pod sandbox", id)
	}
	return &runtimeapi.PodSandboxStatusResponse{Status: proto.Clone(s.status).(*runtimeapi.PodSandboxStatus)}, nil
}

func matchLabels(sel, labels map[string]string) bool {
	for k, v := range sel {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

func (r *Runtime) ListPodSandbox(_ context.Context, filter *runtimeapi.PodSandboxFilter) ([]*runtimeapi.PodSandbox, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := []*runtimeapi.PodSandbox{}
	for id, s := range r.sandboxes {
		if filter != nil {
			if filter.Id != "" && filter.Id != id {
				continue
			}
			if filter.State != nil && filter.State.State != s.status.State {
				continue
			}
			if !matchLabels(filter.LabelSelector, s.status.Labels) {
				continue
			}
		}
		st := s.status
		out = append(out, &runtimeapi.PodSandbox{
			Id: st.Id, Metadata: st.Metadata, State: st.State, CreatedAt: st.CreatedAt,
			Labels: st.Labels, Annotations: st.Annotations, RuntimeHandler: st.RuntimeHandler,
		})
	}
	return out, nil
}

func (r *Runtime) PortForward(context.Context, *runtimeapi.PortForwardRequest) (*runtimeapi.PortForwardResponse, error) {
	return nil, status.Error(codes.Unimplemented, "port-forward is not supported by the scripted runtime")
}

func (r *Runtime) UpdatePodSandboxResources(context.Context, *runtimeapi.UpdatePodSandboxResourcesRequest) (*runtimeapi.UpdatePodSandboxResourcesResponse, error) {
	return &runtimeapi.UpdatePodSandboxResourcesResponse{}, nil
}

func (r *Runtime) CheckpointPod(context.Context, *runtimeapi.CheckpointPodRequest) error {
	return status.Error(codes.Unimplemented, "checkpoint is not supported by the scripted runtime")
}

func (r *Runtime) RestorePod(context.Context, *runtimeapi.RestorePodRequest) (*runtimeapi.RestorePodResponse, error) {
	return nil, status.Error(codes.Unimplemented, "restore is not supported by the scripted runtime")
}

// ---- reading the pod's annotations ---------------------------------------

// resolve reads the sandbox's script and faults (once). Called without r.mu.
func (r *Runtime) resolve(ctx context.Context, s *sandbox) {
	md := s.config.GetMetadata()
	ann := s.config.GetAnnotations()
	// The container list (to check the names the script uses) and which init
	// containers are sidecars are not in the CRI config: read the pod.
	var names []string
	sidecars := map[string]bool{}
	if r.kube != nil {
		gctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		pod, err := r.kube.CoreV1().Pods(md.Namespace).Get(gctx, md.Name, metav1.GetOptions{})
		cancel()
		if err != nil {
			klog.InfoS("Could not read the pod for its container list", "pod", md.Namespace+"/"+md.Name, "err", err)
		} else if pod.UID != types.UID(md.Uid) {
			klog.InfoS("Pod in the API has another UID; container list not checked", "pod", md.Namespace+"/"+md.Name)
		} else {
			names = []string{}
			for _, c := range pod.Spec.InitContainers {
				names = append(names, c.Name)
				if c.RestartPolicy != nil && string(*c.RestartPolicy) == "Always" {
					sidecars[c.Name] = true
				}
			}
			for _, c := range pod.Spec.Containers {
				names = append(names, c.Name)
			}
		}
	}
	var rawScript, rawFaults *string
	if v, ok := ann[script.ScriptAnnotation]; ok {
		rawScript = &v
	}
	if v, ok := ann[script.FaultsAnnotation]; ok {
		rawFaults = &v
	}
	ps, serr := script.ParseScript(rawScript, names)
	faults, ferr := script.ParseFaults(rawFaults)
	if ferr == nil {
		r.mergeNodeFaults(ctx, faults)
	}
	invalid := ""
	if serr != nil {
		invalid = serr.Error()
	} else if ferr != nil {
		invalid = ferr.Error()
	} else {
		for _, k := range faults.Keys {
			if !honouredFaults[k] {
				invalid = fmt.Sprintf("%s: %q is a simulator-only fault; a hollow kubelet (the real kubelet) cannot honour it", script.FaultsAnnotation, k)
				break
			}
		}
	}
	zone := time.UTC
	if faults != nil && faults.TimestampOffset != nil {
		zone = time.FixedZone(*faults.TimestampOffset, faults.OffsetSeconds)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if s.resolved {
		return
	}
	s.resolved = true
	s.names = names
	s.sidecars = sidecars
	s.pscript = ps
	s.faults = faults
	s.invalid = invalid
	s.zone = zone
	if invalid != "" {
		klog.InfoS("Refusing the pod's containers", "pod", md.Namespace+"/"+md.Name, "reason", script.InvalidReason, "message", invalid)
	}
}

// mergeNodeFaults adds the runtime's keys from the Node's faults annotation
// (read when the pod's first container is created); the pod's own keys win,
// as on the simulator. The connection faults on the Node are the proxy's; a
// key the runtime does not honour is ignored here, not refused, so that it
// does not stop every pod on the node.
func (r *Runtime) mergeNodeFaults(ctx context.Context, f *script.Faults) {
	if r.kube == nil || r.nodeName == "" {
		return
	}
	gctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	node, err := r.kube.CoreV1().Nodes().Get(gctx, r.nodeName, metav1.GetOptions{})
	cancel()
	if err != nil {
		return
	}
	raw, ok := node.Annotations[script.FaultsAnnotation]
	if !ok {
		return
	}
	nf, err := script.ParseFaults(&raw)
	if err != nil {
		klog.InfoS("Ignoring the Node's faults annotation", "node", r.nodeName, "err", err)
		return
	}
	if f.ContainerLogMaxSize == nil {
		f.ContainerLogMaxSize = nf.ContainerLogMaxSize
	}
	if f.TimestampOffset == nil && nf.TimestampOffset != nil {
		f.TimestampOffset = nf.TimestampOffset
		f.OffsetSeconds = nf.OffsetSeconds
	}
	if f.DeleteAfterSeconds == nil {
		f.DeleteAfterSeconds = nf.DeleteAfterSeconds
	}
	if f.DeleteGraceSeconds == nil {
		f.DeleteGraceSeconds = nf.DeleteGraceSeconds
	}
}

// ---- containers -----------------------------------------------------------

func (r *Runtime) CreateContainer(ctx context.Context, sandboxID string, config *runtimeapi.ContainerConfig, sandboxConfig *runtimeapi.PodSandboxConfig) (string, error) {
	r.mu.Lock()
	s, ok := r.sandboxes[sandboxID]
	r.mu.Unlock()
	if !ok {
		return "", notFound("pod sandbox", sandboxID)
	}
	if !s.resolved {
		r.resolve(ctx, s)
	}
	md := config.GetMetadata()
	if md == nil {
		return "", status.Error(codes.InvalidArgument, "container config has no metadata")
	}
	r.mu.Lock()
	invalid := s.invalid
	cs := s.pscript
	r.mu.Unlock()
	if invalid != "" {
		// The kubelet reports this as a Warning Event (Failed, "Error: …") and
		// the container waits with CreateContainerError.
		return "", status.Errorf(codes.InvalidArgument, "%s: %s", script.InvalidReason, invalid)
	}
	sc := cs.For(md.Name)
	if md.Attempt == 0 && sc.StartDelaySeconds > 0 {
		// The container stays ContainerCreating meanwhile.
		t := time.NewTimer(time.Duration(sc.StartDelaySeconds * float64(time.Second)))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return "", ctx.Err()
		}
	}
	logDir := sandboxConfig.GetLogDirectory()
	if logDir == "" {
		logDir = s.config.GetLogDirectory()
	}
	logPath := ""
	if config.LogPath != "" {
		logPath = filepath.Join(logDir, config.LogPath)
	}
	id := randomID()
	// The kubelet creates the container with the image ID from ImageStatus;
	// like containerd, report the image by its name and its repo digest.
	imageName := config.GetImage().GetUserSpecifiedImage()
	if imageName == "" {
		imageName = r.imageName(config.GetImage().GetImage())
	}
	imageName = normalizeImage(imageName)
	imageRef := repoDigest(imageName)
	r.mu.Lock()
	defer r.mu.Unlock()
	var logMax int64
	if s.faults != nil && s.faults.ContainerLogMaxSize != nil {
		logMax = *s.faults.ContainerLogMaxSize
	}
	r.containers[id] = &container{
		status: &runtimeapi.ContainerStatus{
			Id:          id,
			Metadata:    md,
			State:       runtimeapi.ContainerState_CONTAINER_CREATED,
			CreatedAt:   time.Now().UnixNano(),
			Image:       &runtimeapi.ImageSpec{Image: imageName, UserSpecifiedImage: config.GetImage().GetUserSpecifiedImage()},
			ImageRef:    imageRef,
			ImageId:     imageIDOf(imageName),
			Labels:      config.Labels,
			Annotations: config.Annotations,
			LogPath:     logPath,
		},
		sandbox: sandboxID,
		podNS:   s.config.GetMetadata().GetNamespace(),
		podName: s.config.GetMetadata().GetName(),
		podUID:  s.config.GetMetadata().GetUid(),
		script:  sc,
		sidecar: s.sidecars[md.Name],
		logMax:  logMax,
		zone:    s.zone,
		killCh:  make(chan int, 1),
		done:    make(chan struct{}),
	}
	return id, nil
}

// recordPath renames the previous run's recording to CONTAINER.K.log and
// returns the path for this run (the simulator's contract).
func (r *Runtime) recordPath(c *container) string {
	if r.simDir == "" {
		return ""
	}
	dir := filepath.Join(r.simDir, c.podNS, c.podName)
	_ = os.MkdirAll(dir, 0o755)
	name := c.status.Metadata.Name
	cur := filepath.Join(dir, name+".log")
	key := c.podNS + "/" + c.podName + "/" + name
	attempt := int(c.status.Metadata.Attempt)
	if prev, ok := r.recorded[key]; ok {
		_ = os.Rename(cur, filepath.Join(dir, fmt.Sprintf("%s.%d.log", name, prev)))
	} else if attempt > 0 {
		// Started after a restart of this process: the recording there is
		// the run before this one, as far as anyone can tell.
		older := filepath.Join(dir, fmt.Sprintf("%s.%d.log", name, attempt-1))
		if _, err := os.Stat(older); os.IsNotExist(err) {
			_ = os.Rename(cur, older)
		}
	}
	r.recorded[key] = int(c.status.Metadata.Attempt)
	return cur
}

func (r *Runtime) StartContainer(ctx context.Context, id string) error {
	r.mu.Lock()
	c, ok := r.containers[id]
	if !ok {
		r.mu.Unlock()
		return notFound("container", id)
	}
	if c.status.State != runtimeapi.ContainerState_CONTAINER_CREATED {
		r.mu.Unlock()
		return status.Errorf(codes.FailedPrecondition, "container %q is not in created state", id)
	}
	if r.stopping {
		r.mu.Unlock()
		return status.Error(codes.Unavailable, "runtime is shutting down")
	}
	rec := r.recordPath(c)
	// The log file exists before StartContainer returns: the kubelet makes
	// the /var/log/containers symlink only if it does.
	var lw *logWriter
	var err error
	if c.status.LogPath != "" {
		lw, err = newLogWriter(c.status.LogPath, rec, c.logMax, c.zone)
	} else {
		lw, err = newLogWriter(os.DevNull, rec, 0, c.zone)
	}
	if err != nil {
		r.mu.Unlock()
		return status.Errorf(codes.Internal, "opening the container log: %v", err)
	}
	c.log = lw
	start := time.Now().UnixNano()
	c.status.State = runtimeapi.ContainerState_CONTAINER_RUNNING
	c.status.StartedAt = start
	arm := false
	var s *sandbox
	if s = r.sandboxes[c.sandbox]; s != nil && !r.deleted[c.podUID] && s.faults != nil && s.faults.DeleteAfterSeconds != nil {
		r.deleted[c.podUID] = true
		arm = true
	}
	r.mu.Unlock()
	if arm {
		r.armDelete(c, s.faults)
	}
	go r.play(c, start)
	return nil
}

// armDelete: the deleteAfterSeconds fault deletes the pod through the API N s
// after its first container starts, with deleteGraceSeconds (default 0).
func (r *Runtime) armDelete(c *container, f *script.Faults) {
	if r.kube == nil {
		return
	}
	grace := int64(0)
	if f.DeleteGraceSeconds != nil {
		grace = *f.DeleteGraceSeconds
	}
	ns, name, uid := c.podNS, c.podName, types.UID(c.podUID)
	time.AfterFunc(time.Duration(*f.DeleteAfterSeconds*float64(time.Second)), func() {
		klog.InfoS("deleteAfterSeconds fault: deleting the pod", "pod", ns+"/"+name, "grace", grace)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		err := r.kube.CoreV1().Pods(ns).Delete(ctx, name, metav1.DeleteOptions{
			GracePeriodSeconds: &grace,
			Preconditions:      &metav1.Preconditions{UID: &uid},
		})
		if err != nil {
			klog.InfoS("deleteAfterSeconds fault: delete failed", "pod", ns+"/"+name, "err", err)
		}
	})
}

const stepBudget = 1 << 20

// play runs the container's script until it ends or is killed.
func (r *Runtime) play(c *container, start int64) {
	attempt := int(c.status.Metadata.Attempt)
	gen := script.NewGenerator(c.script, start, c.status.Metadata.Name, attempt)
	exit := c.script.ExitCode(attempt)
	code := func() int {
		for {
			res, err := gen.Step(time.Now().UnixNano(), stepBudget, c.log)
			if err == nil {
				err = c.log.Flush()
			}
			if err != nil {
				klog.ErrorS(err, "Container output failed", "pod", c.podNS+"/"+c.podName, "container", c.status.Metadata.Name)
				return 1
			}
			if res.Done {
				if c.script.HoldSeconds < 0 {
					return <-c.killCh // runs until killed
				}
				last, ok := gen.LastTimestamp()
				if !ok {
					last = start
				}
				until := last + int64(c.script.HoldSeconds*1e9+0.5)
				return c.waitUntil(until, exit)
			}
			if !res.HasNext {
				select {
				case k := <-c.killCh:
					return k
				default:
				}
				continue
			}
			if k, killed := c.sleepUntil(res.NextDue); killed {
				return k
			}
		}
	}()
	_ = c.log.Close()
	r.mu.Lock()
	c.status.State = runtimeapi.ContainerState_CONTAINER_EXITED
	c.status.FinishedAt = time.Now().UnixNano()
	c.status.ExitCode = int32(code)
	if code == 0 {
		c.status.Reason = "Completed"
	} else {
		c.status.Reason = "Error"
	}
	r.mu.Unlock()
	close(c.done)
}

// sleepUntil sleeps until t (at least 2 ms, as the simulator's timer does) or a kill.
func (c *container) sleepUntil(t int64) (int, bool) {
	d := time.Duration(t - time.Now().UnixNano())
	if d < 2*time.Millisecond {
		d = 2 * time.Millisecond
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case k := <-c.killCh:
		return k, true
	case <-tm.C:
		return 0, false
	}
}

func (c *container) waitUntil(t int64, exit int) int {
	d := time.Duration(t - time.Now().UnixNano())
	if d <= 0 {
		return exit
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case k := <-c.killCh:
		return k
	case <-tm.C:
		return exit
	}
}

// kill ends the run with code (the first kill wins).
func (c *container) kill(code int) {
	select {
	case c.killCh <- code:
	default:
	}
}

// StopContainer behaves like a process given SIGTERM, then SIGKILL after the
// timeout, as the simulator's containers do: a sidecar (restartable init
// container) exits at once with its script's exit code for this run; any
// other container keeps playing its script and, if still running when the
// timeout ends, is killed with 137. Like containerd, it returns once the
// container has exited.
func (r *Runtime) StopContainer(ctx context.Context, id string, timeout int64) error {
	r.mu.Lock()
	c, ok := r.containers[id]
	if !ok {
		r.mu.Unlock()
		return notFound("container", id)
	}
	state := c.status.State
	if state == runtimeapi.ContainerState_CONTAINER_CREATED {
		c.status.State = runtimeapi.ContainerState_CONTAINER_EXITED
		c.status.FinishedAt = time.Now().UnixNano()
		c.status.ExitCode = 137
		c.status.Reason = "Error"
		r.mu.Unlock()
		return nil
	}
	r.mu.Unlock()
	if state != runtimeapi.ContainerState_CONTAINER_RUNNING {
		return nil
	}
	if c.sidecar {
		c.kill(c.script.ExitCode(int(c.status.Metadata.Attempt)))
	} else if timeout > 0 {
		t := time.NewTimer(time.Duration(timeout) * time.Second)
		select {
		case <-c.done:
		case <-t.C:
		}
		t.Stop()
	}
	c.kill(137)
	select {
	case <-c.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	return nil
}

func (r *Runtime) RemoveContainer(_ context.Context, id string) error {
	r.mu.Lock()
	c, ok := r.containers[id]
	if !ok {
		r.mu.Unlock()
		return nil
	}
	running := c.status.State == runtimeapi.ContainerState_CONTAINER_RUNNING
	r.mu.Unlock()
	if running {
		c.kill(137)
		<-c.done
	}
	r.mu.Lock()
	delete(r.containers, id)
	r.mu.Unlock()
	return nil
}

func (r *Runtime) ListContainers(_ context.Context, filter *runtimeapi.ContainerFilter) ([]*runtimeapi.Container, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := []*runtimeapi.Container{}
	for id, c := range r.containers {
		st := c.status
		if filter != nil {
			if filter.Id != "" && filter.Id != id {
				continue
			}
			if filter.PodSandboxId != "" && filter.PodSandboxId != c.sandbox {
				continue
			}
			if filter.State != nil && filter.State.State != st.State {
				continue
			}
			if !matchLabels(filter.LabelSelector, st.Labels) {
				continue
			}
		}
		out = append(out, &runtimeapi.Container{
			Id: id, PodSandboxId: c.sandbox, Metadata: st.Metadata, Image: st.Image, ImageRef: st.ImageRef,
			ImageId: st.ImageId, State: st.State, CreatedAt: st.CreatedAt, Labels: st.Labels, Annotations: st.Annotations,
		})
	}
	return out, nil
}

func (r *Runtime) ContainerStatus(_ context.Context, id string, _ bool) (*runtimeapi.ContainerStatusResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, ok := r.containers[id]
	if !ok {
		return nil, notFound("container", id)
	}
	return &runtimeapi.ContainerStatusResponse{Status: proto.Clone(c.status).(*runtimeapi.ContainerStatus)}, nil
}

func (r *Runtime) UpdateContainerResources(context.Context, string, *runtimeapi.ContainerResources) error {
	return nil
}

// ExecSync: exec probes succeed (there is no process to run them in).
func (r *Runtime) ExecSync(context.Context, string, []string, time.Duration) ([]byte, []byte, error) {
	return nil, nil, nil
}

func (r *Runtime) Exec(context.Context, *runtimeapi.ExecRequest) (*runtimeapi.ExecResponse, error) {
	return nil, status.Error(codes.Unimplemented, "exec is not supported by the scripted runtime")
}

func (r *Runtime) Attach(context.Context, *runtimeapi.AttachRequest) (*runtimeapi.AttachResponse, error) {
	return nil, status.Error(codes.Unimplemented, "attach is not supported by the scripted runtime")
}

func (r *Runtime) ReopenContainerLog(_ context.Context, id string) error {
	r.mu.Lock()
	c, ok := r.containers[id]
	var lw *logWriter
	running := false
	if ok {
		lw = c.log
		running = c.status.State == runtimeapi.ContainerState_CONTAINER_RUNNING
	}
	r.mu.Unlock()
	if !ok {
		return notFound("container", id)
	}
	if !running || lw == nil {
		return status.Errorf(codes.FailedPrecondition, "container %q is not running", id)
	}
	return lw.Reopen()
}

func (r *Runtime) CheckpointContainer(context.Context, *runtimeapi.CheckpointContainerRequest) error {
	return status.Error(codes.Unimplemented, "checkpoint is not supported by the scripted runtime")
}

func (r *Runtime) GetContainerEvents(ctx context.Context, _ chan *runtimeapi.ContainerEventResponse, _ func(runtimeapi.RuntimeService_GetContainerEventsClient)) error {
	return status.Error(codes.Unimplemented, "container events are not supported by the scripted runtime")
}

// ---- stats ------------------------------------------------------------------

func (r *Runtime) ContainerStats(_ context.Context, id string) (*runtimeapi.ContainerStats, error) {
	return nil, notFound("stats of container", id)
}

func (r *Runtime) ListContainerStats(context.Context, *runtimeapi.ContainerStatsFilter) ([]*runtimeapi.ContainerStats, error) {
	return []*runtimeapi.ContainerStats{}, nil
}

func (r *Runtime) PodSandboxStats(_ context.Context, id string) (*runtimeapi.PodSandboxStats, error) {
	return nil, notFound("stats of pod sandbox", id)
}

func (r *Runtime) ListPodSandboxStats(context.Context, *runtimeapi.PodSandboxStatsFilter) ([]*runtimeapi.PodSandboxStats, error) {
	return []*runtimeapi.PodSandboxStats{}, nil
}

func (r *Runtime) ListMetricDescriptors(context.Context) ([]*runtimeapi.MetricDescriptor, error) {
	return []*runtimeapi.MetricDescriptor{}, nil
}

func (r *Runtime) ListPodSandboxMetrics(context.Context) ([]*runtimeapi.PodSandboxMetrics, error) {
	return []*runtimeapi.PodSandboxMetrics{}, nil
}

// Shutdown ends every running container's output (flushing its files); the
// process is about to exit.
func (r *Runtime) Shutdown() {
	r.mu.Lock()
	r.stopping = true
	var ws []*logWriter
	for _, c := range r.containers {
		if c.log != nil {
			ws = append(ws, c.log)
		}
	}
	r.mu.Unlock()
	for _, w := range ws {
		_ = w.Flush()
	}
}

// ---- images -------------------------------------------------------------------

func digestOf(image string) string {
	sum := sha256.Sum256([]byte(image))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// imageIDOf is the image's ID (the same for every reference to it).
func imageIDOf(image string) string { return digestOf(normalizeImage(image)) }

// repoDigest is what containerd reports as a container's imageRef.
func repoDigest(name string) string {
	repo := name
	if i := strings.LastIndex(repo, "@"); i >= 0 {
		repo = repo[:i]
	} else if i := strings.LastIndex(repo, ":"); i > strings.LastIndex(repo, "/") {
		repo = repo[:i]
	}
	return repo + "@" + digestOf(name)
}

// normalizeImage makes a reference fully qualified as containerd reports it
// (busybox -> docker.io/library/busybox:latest).
func normalizeImage(image string) string {
	if image == "" || strings.HasPrefix(image, "sha256:") {
		return image
	}
	name := image
	first, _, hasSlash := strings.Cut(name, "/")
	if !hasSlash {
		name = "docker.io/library/" + name
	} else if !strings.ContainsAny(first, ".:") && first != "localhost" {
		name = "docker.io/" + name
	}
	last := name[strings.LastIndex(name, "/")+1:]
	if !strings.Contains(last, ":") && !strings.Contains(name, "@") {
		name += ":latest"
	}
	return name
}

func (r *Runtime) imageName(id string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if n, ok := r.imageNames[id]; ok {
		return n
	}
	return id
}

// Images is the ImageManagerService: every image is present, pulls succeed at once.
type Images struct{ r *Runtime }

func (r *Runtime) Images() *Images { return &Images{r: r} }

func (i *Images) image(spec *runtimeapi.ImageSpec) *runtimeapi.Image {
	name := spec.GetImage()
	if strings.HasPrefix(name, "sha256:") {
		return &runtimeapi.Image{Id: name, RepoTags: []string{i.r.imageName(name)}, Size: 1 << 20, Spec: spec}
	}
	name = normalizeImage(name)
	id := imageIDOf(name)
	i.r.mu.Lock()
	i.r.imageNames[id] = name
	i.r.mu.Unlock()
	return &runtimeapi.Image{Id: id, RepoTags: []string{name}, RepoDigests: []string{repoDigest(name)}, Size: 1 << 20, Spec: spec}
}

func (i *Images) ListImages(context.Context, *runtimeapi.ImageFilter) ([]*runtimeapi.Image, error) {
	i.r.mu.Lock()
	defer i.r.mu.Unlock()
	out := []*runtimeapi.Image{}
	for _, im := range i.r.images {
		out = append(out, im)
	}
	return out, nil
}

func (i *Images) ImageStatus(_ context.Context, spec *runtimeapi.ImageSpec, _ bool) (*runtimeapi.ImageStatusResponse, error) {
	return &runtimeapi.ImageStatusResponse{Image: i.image(spec)}, nil
}

func (i *Images) PullImage(_ context.Context, spec *runtimeapi.ImageSpec, _ *runtimeapi.AuthConfig, _ *runtimeapi.PodSandboxConfig) (string, error) {
	im := i.image(spec)
	i.r.mu.Lock()
	i.r.images[im.Id] = im
	i.r.mu.Unlock()
	return im.Id, nil
}

func (i *Images) RemoveImage(_ context.Context, spec *runtimeapi.ImageSpec) error {
	i.r.mu.Lock()
	id := spec.GetImage()
	if !strings.HasPrefix(id, "sha256:") {
		id = imageIDOf(id)
	}
	delete(i.r.images, id)
	i.r.mu.Unlock()
	return nil
}

func (i *Images) ImageFsInfo(context.Context) (*runtimeapi.ImageFsInfoResponse, error) {
	return &runtimeapi.ImageFsInfoResponse{}, nil
}

func (i *Images) Close(context.Context) error { return nil }
