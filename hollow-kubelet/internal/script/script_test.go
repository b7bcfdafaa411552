package script

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

type rec struct {
	ts      int64
	stream  Stream
	partial bool
	content []byte
}

type memSink struct{ recs []rec }

func (m *memSink) Record(ts int64, s Stream, p bool, c []byte) error {
	m.recs = append(m.recs, rec{ts, s, p, append([]byte{}, c...)})
	return nil
}

func (m *memSink) content() []byte {
	var out []byte
	for _, r := range m.recs {
		out = append(out, r.content...)
	}
	return out
}

const start = int64(1_800_000_000_000_000_000)

func containerScript(t *testing.T, spec string, name string) *ContainerScript {
	t.Helper()
	raw := fmt.Sprintf(`{"containers":{%q:%s}}`, name, spec)
	ps, err := ParseScript(&raw, []string{name})
	if err != nil {
		t.Fatal(err)
	}
	return ps.For(name)
}

// runAll plays a script to the end on a simulated clock, as the simulator's
// unit tests and testdata/golden.ts do.
func runAll(t *testing.T, cs *ContainerScript, name string, run int) *memSink {
	t.Helper()
	sink := &memSink{}
	g := NewGenerator(cs, start, name, run)
	now := start
	for i := 0; i < 1_000_000; i++ {
		r, err := g.Step(now, 1<<20, sink)
		if err != nil {
			t.Fatal(err)
		}
		if r.Done {
			return sink
		}
		if r.HasNext {
			if r.NextDue > now {
				now = r.NextDue
			} else {
				now += 10_000_000
			}
		}
	}
	t.Fatal("script did not finish")
	return nil
}

// TestSimulatorGolden compares the content and the record layout (relative
// timestamps, streams, partial flags, sizes) with what the TypeScript
// simulator produced for the same scripts (testdata/simulator-golden.jsonl,
// made by testdata/golden.ts from testdata/cases.json).
func TestSimulatorGolden(t *testing.T) {
	var cases [][4]any
	b, err := os.ReadFile("testdata/cases.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &cases); err != nil {
		t.Fatal(err)
	}
	want := map[string]map[string]any{}
	f, err := os.Open("testdata/simulator-golden.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatal(err)
		}
		want[m["name"].(string)] = m
	}
	for _, c := range cases {
		name, raw, ctr, run := c[0].(string), c[1].(string), c[2].(string), int(c[3].(float64))
		t.Run(name, func(t *testing.T) {
			ps, err := ParseScript(&raw, []string{ctr})
			if err != nil {
				t.Fatal(err)
			}
			sink := runAll(t, ps.For(ctr), ctr, run)
			content := sink.content()
			sum := sha256.Sum256(content)
			var lines []string
			for _, r := range sink.recs {
				p := "F"
				if r.partial {
					p = "P"
				}
				lines = append(lines, fmt.Sprintf("%d:%d:%s:%d", r.ts-start, r.stream, p, len(r.content)))
			}
			rsum := sha256.Sum256([]byte(strings.Join(lines, "\n")))
			w := want[name]
			if got := hex.EncodeToString(sum[:]); got != w["sha"] {
				t.Errorf("content sha256 %s, simulator %s (bytes %d vs %v)", got, w["sha"], len(content), w["bytes"])
			}
			if got := hex.EncodeToString(rsum[:]); got != w["records"] {
				t.Errorf("record layout differs from the simulator's (%d records vs %v)", len(sink.recs), w["n"])
			}
		})
	}
}

// TestSimulatorGoldenFresh regenerates the golden file with the TypeScript
// simulator when node is available, so a change to either side shows.
func TestSimulatorGoldenFresh(t *testing.T) {
	node, err := filepath.Abs("../../../node_modules/.bin/node")
	if err != nil {
		t.Skip(err)
	}
	if _, err := os.Stat(node); err != nil {
		t.Skip("node_modules/.bin/node not installed")
	}
	cases, err := os.ReadFile("testdata/cases.json")
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(node, "testdata/golden.ts", string(cases)).Output()
	if err != nil {
		t.Fatalf("running the simulator's generator: %v", err)
	}
	want, err := os.ReadFile("testdata/simulator-golden.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != string(want) {
		t.Fatalf("the simulator's output changed; regenerate testdata/simulator-golden.jsonl and compare:\n%s", out)
	}
}

func TestGeneratedLines(t *testing.T) {
	s := runAll(t, containerScript(t, `{"lines":50,"lineBytes":120}`, "app"), "app", 0)
	out := string(s.content())
	if len(out) != 50*120 {
		t.Fatalf("len %d", len(out))
	}
	lines := strings.Split(out, "\n")[:50]
	seen := map[string]bool{}
	for _, l := range lines {
		if len(l) != 119 {
			t.Fatalf("line %q", l)
		}
		seen[l] = true
	}
	if len(seen) != 50 {
		t.Fatal("lines not distinct")
	}
	if !strings.HasPrefix(lines[0], "0000000001 app run=0 ") {
		t.Fatalf("first line %q", lines[0])
	}
	if got := string(runAll(t, containerScript(t, `{"lines":3,"lineBytes":1}`, "app"), "app", 0).content()); got != "\n\n\n" {
		t.Fatalf("%q", got)
	}
	if got := string(runAll(t, containerScript(t, `{"lines":2,"lineBytes":5}`, "app"), "app", 0).content()); got != "0001\n0002\n" {
		t.Fatalf("%q", got)
	}
}

func TestPacing(t *testing.T) {
	sink := &memSink{}
	g := NewGenerator(containerScript(t, `{"lines":5,"lineBytes":10,"linesPerSecond":2}`, "app"), start, "app", 0)
	r, _ := g.Step(start, 1<<20, sink)
	if len(sink.recs) != 1 || !r.HasNext || r.NextDue != start+500_000_000 {
		t.Fatalf("%+v %d", r, len(sink.recs))
	}
	_, _ = g.Step(start+1_000_000_000, 1<<20, sink)
	if len(sink.recs) != 3 || sink.recs[1].ts != start+500_000_000 || sink.recs[2].ts != start+1_000_000_000 {
		t.Fatalf("%+v", sink.recs)
	}
	r, _ = g.Step(start+10_000_000_000, 1<<20, sink)
	if !r.Done || len(sink.recs) != 5 {
		t.Fatal("not done")
	}
}

func TestLongLinesSplit(t *testing.T) {
	lineBytes := 2*MaxRecordBytes + 100
	s := runAll(t, containerScript(t, fmt.Sprintf(`{"lines":2,"lineBytes":%d,"linesPerSecond":1}`, lineBytes), "app"), "app", 0)
	var flags []bool
	for _, r := range s.recs {
		flags = append(flags, r.partial)
	}
	if fmt.Sprint(flags) != "[true true false true true false]" {
		t.Fatal(flags)
	}
	if len(s.recs[0].content) != MaxRecordBytes || len(s.recs[2].content) != 100 {
		t.Fatal("chunk sizes")
	}
	if !(s.recs[1].ts > s.recs[0].ts && s.recs[2].ts > s.recs[1].ts) || s.recs[3].ts != start+1_000_000_000 {
		t.Fatal("chunk stamps")
	}
	one := runAll(t, containerScript(t, fmt.Sprintf(`{"lines":1,"lineBytes":%d}`, MaxRecordBytes+1), "app"), "app", 0)
	if len(one.recs) != 1 || one.recs[0].partial {
		t.Fatal("a 16 KiB line is one full record")
	}
}

func TestTextAndStreams(t *testing.T) {
	s := runAll(t, containerScript(t, `{"text":"ab\ncd","repeat":3}`, "app"), "app", 0)
	if string(s.content()) != "ab\ncdab\ncdab\ncd" || len(s.recs) != 4 || !s.recs[3].partial || s.recs[2].partial {
		t.Fatalf("%q", s.content())
	}
	s = runAll(t, containerScript(t, `{"segments":[{"text":"e\n","stream":"stderr"},{"lines":6,"lineBytes":8,"stderrEvery":3}]}`, "app"), "app", 0)
	var streams []Stream
	for _, r := range s.recs {
		streams = append(streams, r.stream)
	}
	if fmt.Sprint(streams) != "[stderr stdout stdout stderr stdout stdout stderr]" {
		t.Fatal(streams)
	}
}

func TestBurst(t *testing.T) {
	s := runAll(t, containerScript(t, `{"lines":10,"lineBytes":20,"linesPerSecond":100,"burst":4}`, "app"), "app", 0)
	ts := func(i int) int64 { return s.recs[i].ts }
	if ts(0) != ts(3) || ts(4) != ts(7) || ts(8) != ts(9) || ts(4) <= ts(3) || ts(4) != start+40_000_000 {
		t.Fatal("burst stamps")
	}
}

func TestParse(t *testing.T) {
	raw := `{"containers":{"app":{"text":"a\nb","repeat":3,"burst":4,"stream":"stderr","exitCodes":[1,1,0],"startDelaySeconds":2,"holdSeconds":-1,"restartDelaySeconds":0.5}}}`
	ps, err := ParseScript(&raw, []string{"app"})
	if err != nil {
		t.Fatal(err)
	}
	c := ps.For("app")
	if c.Segments[0].Generated || string(c.Segments[0].Text) != "a\nb" || c.Segments[0].Repeat != 3 || c.Segments[0].Stream != Stderr ||
		c.StartDelaySeconds != 2 || c.HoldSeconds != -1 || c.ExitCode(0) != 1 || c.ExitCode(7) != 0 {
		t.Fatalf("%+v", c)
	}
	b64 := `{"containers":{"app":{"textBase64":"AP8NCsg="}}}`
	ps, _ = ParseScript(&b64, []string{"app"})
	if hex.EncodeToString(ps.For("app").Segments[0].Text) != "00ff0d0ac8" {
		t.Fatal("base64")
	}
	none, _ := ParseScript(nil, []string{"a", "b"})
	if none.For("b").Segments[0].Lines != 3 {
		t.Fatal("default")
	}
}

func TestParseErrors(t *testing.T) {
	bad := []struct{ what, raw, re string }{
		{"unknown top-level key", `{"container":{}}`, `unknown key "container"`},
		{"unknown container key", `{"containers":{"app":{"line":3}}}`, `unknown key "line" \(allowed: lines, lineBytes`},
		{"container not in the pod", `{"containers":{"web":{"lines":1}}}`, `containers.web: the pod has no container "web" \(it has: app\)`},
		{"negative lines", `{"containers":{"app":{"lines":-1}}}`, `containers.app.lines: must be an integer >= 0, got -1$`},
		{"zero lineBytes", `{"containers":{"app":{"lines":1,"lineBytes":0}}}`, `lineBytes`},
		{"lines and text", `{"containers":{"app":{"lines":1,"text":"x"}}}`, `not both`},
		{"exit code out of range", `{"containers":{"app":{"exitCode":256}}}`, `exitCode: must be an integer from 0 to 255, got 256`},
		{"zero linesPerSecond", `{"containers":{"app":{"lines":1,"linesPerSecond":0}}}`, `linesPerSecond: must be a number > 0, got 0`},
		{"bad stream", `{"containers":{"app":{"lines":1,"stream":"out"}}}`, `stream: must be "stdout" or "stderr", got "out"`},
		{"segments plus inline keys", `{"containers":{"app":{"lines":1,"segments":[]}}}`, `"segments" replaces the line keys; move lines into a segment`},
		{"containers not an object", `{"containers":[]}`, `containers: must be an object keyed by container name`},
		{"not json", `{`, `^sim.logtail.dev/script: not valid JSON: `},
		{"float as int", `{"containers":{"app":{"lines":1.5}}}`, `got 1.5$`},
		{"stringify object", `{"containers":{"app":{"exitCode":{"a":[1,"x"]}}}}`, `got \{"a":\[1,"x"\]\}$`},
	}
	for _, b := range bad {
		_, err := ParseScript(&b.raw, []string{"app"})
		if err == nil || !regexp.MustCompile(b.re).MatchString(err.Error()) {
			t.Errorf("%s: got %v, want /%s/", b.what, err, b.re)
		}
	}
}

func TestFaults(t *testing.T) {
	raw := `{"cutEveryBytes":4000000,"containerLogMaxSize":"1Mi","timestampOffset":"-03:30","deleteAfterSeconds":5,"deleteGraceSeconds":3}`
	f, err := ParseFaults(&raw)
	if err != nil {
		t.Fatal(err)
	}
	if *f.CutEveryBytes != 4000000 || *f.ContainerLogMaxSize != 1<<20 || f.OffsetSeconds != -(3*3600+30*60) || *f.DeleteGraceSeconds != 3 {
		t.Fatalf("%+v", f)
	}
	if strings.Join(f.Keys, ",") != "cutEveryBytes,containerLogMaxSize,timestampOffset,deleteAfterSeconds,deleteGraceSeconds" {
		t.Fatal(f.Keys)
	}
	for _, b := range []struct{ raw, re string }{
		{`{"nope":1}`, `unknown key "nope"`},
		{`{"deleteGraceSeconds":1}`, `deleteGraceSeconds: needs deleteAfterSeconds`},
		{`{"containerLogMaxSize":"10MB"}`, `containerLogMaxSize: must be a positive byte count or a quantity like "10Mi", got "10MB"`},
		{`{"timestampOffset":"+3:30"}`, `timestampOffset: must be a UTC offset`},
		{`{"timestampOffset":"+24:00"}`, `timestampOffset`},
		{`{"http500Count":-1}`, `http500Count: must be an integer >= 0, got -1`},
	} {
		_, err := ParseFaults(&b.raw)
		if err == nil || !regexp.MustCompile(b.re).MatchString(err.Error()) {
			t.Errorf("%s: got %v, want /%s/", b.raw, err, b.re)
		}
	}
}

func TestJSNumber(t *testing.T) {
	for f, want := range map[float64]string{0: "0", 1: "1", -1: "-1", 0.5: "0.5", 1e21: "1e+21", 1.5e-7: "1.5e-7", 123456789012: "123456789012", 1e-7: "1e-7"} {
		if got := jsNumber(f); got != want {
			t.Errorf("%v: %s, want %s", f, got, want)
		}
	}
}

func TestKeyOrder(t *testing.T) {
	v, err := parseJSON(`{"b":1,"2":1,"a":1,"1":1,"b":2}`)
	if err != nil {
		t.Fatal(err)
	}
	o := v.(*object)
	if strings.Join(o.keys, ",") != "1,2,b,a" || o.vals["b"].(float64) != 2 {
		t.Fatal(o.keys)
	}
}
