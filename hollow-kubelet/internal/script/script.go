// Package script reads the node simulator's pod annotations
// (`sim.logtail.dev/script`, `sim.logtail.dev/faults`) exactly as
// src/dev/simulator/script.ts does: same keys, defaults, ranges and error
// texts, so that a script means the same thing on a hollow kubelet as on the
// simulator.
package script

import (
	"encoding/base64"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
)

const (
	ScriptAnnotation = "sim.logtail.dev/script"
	FaultsAnnotation = "sim.logtail.dev/faults"
	InvalidReason    = "InvalidSimScript"
)

type Stream int

const (
	Stdout Stream = 0
	Stderr Stream = 1
)

func (s Stream) String() string {
	if s == Stderr {
		return "stderr"
	}
	return "stdout"
}

type Segment struct {
	Generated bool
	// generated: number of lines and each line's length including its newline.
	Lines     int
	LineBytes int
	// text: the bytes written, Repeat times.
	Text   []byte
	Repeat int
	// Lines per second; 0 means as fast as possible (the simulator's null).
	LinesPerSecond float64
	Burst          int
	Stream         Stream
	// Every Nth line goes to stderr instead; 0: none.
	StderrEvery  int
	PauseSeconds float64
}

type ContainerScript struct {
	Segments []Segment
	// Run k exits with ExitCodes[min(k, len-1)].
	ExitCodes         []int
	StartDelaySeconds float64
	// Seconds the container keeps running after its last line; -1: until killed.
	HoldSeconds float64
	// Parsed for compatibility; the real kubelet's own back-off applies.
	RestartDelaySeconds float64
}

// ExitCode is the exit code of run `attempt`.
func (c *ContainerScript) ExitCode(attempt int) int {
	if attempt >= len(c.ExitCodes) {
		attempt = len(c.ExitCodes) - 1
	}
	return c.ExitCodes[attempt]
}

type PodScript struct {
	Containers map[string]*ContainerScript
}

// Faults holds the faults annotation; a nil pointer means "not set".
type Faults struct {
	TLSAlertSeconds        *float64
	CutEveryBytes          *int64
	TerminatedDelaySeconds *float64
	HTTP500Count           *int64
	DeleteAfterSeconds     *float64
	DeleteGraceSeconds     *int64
	EndStreamAfterBytes    *int64
	StallAfterBytes        *int64
	ContainerLogMaxSize    *int64
	// TimestampOffset is "±hh:mm"; OffsetSeconds its value.
	TimestampOffset *string
	OffsetSeconds   int
	// Keys as written, in annotation order.
	Keys []string
}

const DefaultLineBytes = 100

type scriptError struct{ msg string }

func (e *scriptError) Error() string { return e.msg }

func fail(path, msg string) {
	panic(&scriptError{path + ": " + msg})
}

func catch(err *error) {
	if r := recover(); r != nil {
		if se, ok := r.(*scriptError); ok {
			*err = se
			return
		}
		panic(r)
	}
}

func isObject(v any) (*object, bool) {
	o, ok := v.(*object)
	return o, ok
}

func checkKeys(o *object, allowed []string, path string) {
	for _, k := range o.keys {
		found := false
		for _, a := range allowed {
			if a == k {
				found = true
				break
			}
		}
		if !found {
			fail(path, fmt.Sprintf("unknown key %q (allowed: %s)", k, strings.Join(allowed, ", ")))
		}
	}
}

const maxSafeInteger = 9007199254740991

func intv(v any, path string, min, max float64) int64 {
	f, ok := v.(float64)
	if !ok || math.IsInf(f, 0) || math.Trunc(f) != f || f < min || f > max {
		rng := fmt.Sprintf(" from %s to %s", jsNumber(min), jsNumber(max))
		if max == maxSafeInteger {
			rng = " >= " + jsNumber(min)
		}
		fail(path, fmt.Sprintf("must be an integer%s, got %s", rng, stringify(v)))
	}
	return int64(f)
}

func num(v any, path string, min float64, exclusiveMin bool) float64 {
	f, ok := v.(float64)
	if !ok || math.IsInf(f, 0) || math.IsNaN(f) || f < min || (exclusiveMin && f == min) {
		op := ">="
		if exclusiveMin {
			op = ">"
		}
		fail(path, fmt.Sprintf("must be a number %s %s, got %s", op, jsNumber(min), stringify(v)))
	}
	return f
}

var segmentKeys = []string{"lines", "lineBytes", "text", "textBase64", "repeat", "linesPerSecond", "burst", "stream", "stderrEvery", "pauseSeconds"}
var containerKeys = append(append([]string{}, segmentKeys...), "segments", "exitCode", "exitCodes", "startDelaySeconds", "holdSeconds", "restartDelaySeconds")

var base64Re = regexp.MustCompile(`^[A-Za-z0-9+/]*={0,2}$`)

// decodeBase64 decodes like Node's Buffer.from(s, 'base64') for strings the
// simulator's regexp admits: padding optional, a dangling sixth bit ignored.
func decodeBase64(s string) []byte {
	s = strings.TrimRight(s, "=")
	if len(s)%4 == 1 {
		s = s[:len(s)-1]
	}
	b, err := base64.RawStdEncoding.DecodeString(s)
	if err != nil {
		return []byte{}
	}
	return b
}

func parseSegment(o *object, path string) Segment {
	hasLines := o.has("lines")
	hasText := o.has("text") || o.has("textBase64")
	if hasLines && hasText {
		fail(path, `use either "lines" (generated lines) or "text"/"textBase64", not both`)
	}
	if o.has("text") && o.has("textBase64") {
		fail(path, `use either "text" or "textBase64", not both`)
	}
	if !hasText && o.has("repeat") {
		fail(path, `"repeat" needs "text" or "textBase64"`)
	}
	if !hasLines && o.has("lineBytes") {
		fail(path, `"lineBytes" needs "lines"`)
	}
	text := []byte{}
	if v, ok := o.get("text"); ok {
		s, ok := v.(string)
		if !ok {
			fail(path+".text", "must be a string")
		}
		text = []byte(s)
	} else if v, ok := o.get("textBase64"); ok {
		s, ok := v.(string)
		if !ok || !base64Re.MatchString(s) {
			fail(path+".textBase64", "must be base64")
		}
		text = decodeBase64(s)
	}
	stream := Stdout
	if v, ok := o.get("stream"); ok {
		if v == "stderr" {
			stream = Stderr
		} else if v != "stdout" {
			fail(path+".stream", fmt.Sprintf(`must be "stdout" or "stderr", got %s`, stringify(v)))
		}
	}
	s := Segment{Generated: !hasText, LineBytes: DefaultLineBytes, Text: text, Repeat: 1, Burst: 1, Stream: stream}
	if hasLines {
		v, _ := o.get("lines")
		s.Lines = int(intv(v, path+".lines", 0, maxSafeInteger))
	}
	if v, ok := o.get("lineBytes"); ok {
		s.LineBytes = int(intv(v, path+".lineBytes", 1, maxSafeInteger))
	}
	if v, ok := o.get("repeat"); ok {
		s.Repeat = int(intv(v, path+".repeat", 0, maxSafeInteger))
	}
	if v, ok := o.get("linesPerSecond"); ok {
		if _, isNull := v.(jsNull); !isNull {
			s.LinesPerSecond = num(v, path+".linesPerSecond", 0, true)
		}
	}
	if v, ok := o.get("burst"); ok {
		s.Burst = int(intv(v, path+".burst", 1, maxSafeInteger))
	}
	if v, ok := o.get("stderrEvery"); ok {
		s.StderrEvery = int(intv(v, path+".stderrEvery", 1, maxSafeInteger))
	}
	if v, ok := o.get("pauseSeconds"); ok {
		s.PauseSeconds = num(v, path+".pauseSeconds", 0, false)
	}
	return s
}

func parseContainer(v any, path string) *ContainerScript {
	o, ok := isObject(v)
	if !ok {
		fail(path, "must be an object")
	}
	checkKeys(o, containerKeys, path)
	inline := false
	var inlineKeys []string
	for _, k := range segmentKeys {
		if o.has(k) {
			inline = true
			inlineKeys = append(inlineKeys, k)
		}
	}
	segments := []Segment{}
	if sv, ok := o.get("segments"); ok {
		if len(inlineKeys) > 0 {
			fail(path, fmt.Sprintf(`"segments" replaces the line keys; move %s into a segment`, strings.Join(inlineKeys, ", ")))
		}
		arr, ok := sv.([]any)
		if !ok {
			fail(path+".segments", "must be an array")
		}
		for i, e := range arr {
			p := fmt.Sprintf("%s.segments[%d]", path, i)
			so, ok := isObject(e)
			if !ok {
				fail(p, "must be an object")
			}
			checkKeys(so, segmentKeys, p)
			segments = append(segments, parseSegment(so, p))
		}
	} else if inline {
		segments = []Segment{parseSegment(o, path)}
	}
	if o.has("exitCode") && o.has("exitCodes") {
		fail(path, `use either "exitCode" or "exitCodes", not both`)
	}
	exitCodes := []int{0}
	if v, ok := o.get("exitCode"); ok {
		exitCodes = []int{int(intv(v, path+".exitCode", 0, 255))}
	}
	if v, ok := o.get("exitCodes"); ok {
		arr, ok := v.([]any)
		if !ok || len(arr) == 0 {
			fail(path+".exitCodes", "must be a non-empty array of integers")
		}
		exitCodes = make([]int, len(arr))
		for i, e := range arr {
			exitCodes[i] = int(intv(e, fmt.Sprintf("%s.exitCodes[%d]", path, i), 0, 255))
		}
	}
	c := &ContainerScript{Segments: segments, ExitCodes: exitCodes, RestartDelaySeconds: 1}
	if v, ok := o.get("holdSeconds"); ok {
		if f, isNum := v.(float64); isNum && f == -1 {
			c.HoldSeconds = -1
		} else {
			c.HoldSeconds = num(v, path+".holdSeconds", 0, false)
		}
	}
	if v, ok := o.get("startDelaySeconds"); ok {
		c.StartDelaySeconds = num(v, path+".startDelaySeconds", 0, false)
	}
	if v, ok := o.get("restartDelaySeconds"); ok {
		c.RestartDelaySeconds = num(v, path+".restartDelaySeconds", 0, false)
	}
	return c
}

// DefaultContainerScript is what a container without a script does: a few lines, then exit 0.
func DefaultContainerScript() *ContainerScript {
	return &ContainerScript{
		Segments:            []Segment{{Generated: true, Lines: 3, LineBytes: 64, Text: []byte{}, Repeat: 1, Burst: 1, Stream: Stdout}},
		ExitCodes:           []int{0},
		RestartDelaySeconds: 1,
	}
}

func parseJSONOrFail(raw, what string) any {
	v, err := parseJSON(raw)
	if err != nil {
		panic(&scriptError{fmt.Sprintf("%s: not valid JSON: %s", what, err.Error())})
	}
	return v
}

// ParseScript parses the script annotation (raw nil: no annotation) for a pod
// whose containers (init and regular) are containerNames. Containers the
// script does not name get the default script. With containerNames nil the
// check that each named container exists is skipped.
func ParseScript(raw *string, containerNames []string) (ps *PodScript, err error) {
	defer catch(&err)
	containers := map[string]*ContainerScript{}
	if raw != nil {
		j := parseJSONOrFail(*raw, ScriptAnnotation)
		o, ok := isObject(j)
		if !ok {
			fail(ScriptAnnotation, "must be a JSON object")
		}
		checkKeys(o, []string{"containers"}, ScriptAnnotation)
		cv, _ := o.get("containers")
		co, ok := isObject(cv)
		if !ok {
			fail(ScriptAnnotation+": containers", "must be an object keyed by container name")
		}
		for _, name := range co.keys {
			if containerNames != nil && !contains(containerNames, name) {
				fail(ScriptAnnotation+": containers."+name, fmt.Sprintf("the pod has no container %q (it has: %s)", name, strings.Join(containerNames, ", ")))
			}
			containers[name] = parseContainer(co.vals[name], ScriptAnnotation+": containers."+name)
		}
	}
	for _, n := range containerNames {
		if _, ok := containers[n]; !ok {
			containers[n] = DefaultContainerScript()
		}
	}
	return &PodScript{Containers: containers}, nil
}

// For returns the script of one container (the default if unnamed).
func (p *PodScript) For(name string) *ContainerScript {
	if c, ok := p.Containers[name]; ok {
		return c
	}
	return DefaultContainerScript()
}

func contains(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

var quantityRe = regexp.MustCompile(`^(\d+)(Ki|Mi|Gi|K|M|G)?$`)
var quantityMult = map[string]float64{"Ki": 1024, "Mi": 1024 * 1024, "Gi": 1024 * 1024 * 1024, "K": 1e3, "M": 1e6, "G": 1e9}

func parseSize(v any, path string) int64 {
	if _, ok := v.(float64); ok {
		return intv(v, path, 1, maxSafeInteger)
	}
	if s, ok := v.(string); ok {
		if m := quantityRe.FindStringSubmatch(s); m != nil {
			n, _ := strconv.ParseFloat(m[1], 64)
			if m[2] != "" {
				n *= quantityMult[m[2]]
			}
			if n >= 1 {
				return int64(n)
			}
		}
	}
	fail(path, fmt.Sprintf(`must be a positive byte count or a quantity like "10Mi", got %s`, stringify(v)))
	return 0
}

var offsetRe = regexp.MustCompile(`^([+-])(\d{2}):(\d{2})$`)

// ParseOffset parses "±hh:mm" (hh 00–23, mm 00–59) into seconds east of UTC.
func ParseOffset(s string) (int, bool) {
	m := offsetRe.FindStringSubmatch(s)
	if m == nil {
		return 0, false
	}
	h, _ := strconv.Atoi(m[2])
	mm, _ := strconv.Atoi(m[3])
	if h > 23 || mm > 59 {
		return 0, false
	}
	sec := h*3600 + mm*60
	if m[1] == "-" {
		sec = -sec
	}
	return sec, true
}

// FaultKeys are the keys the simulator knows (src/dev/simulator/script.ts),
// plus timestampOffset.
var FaultKeys = []string{
	"tlsAlertSeconds",
	"cutEveryBytes",
	"terminatedDelaySeconds",
	"http500Count",
	"deleteAfterSeconds",
	"deleteGraceSeconds",
	"endStreamAfterBytes",
	"stallAfterBytes",
	"containerLogMaxSize",
	"timestampOffset",
}

// ParseFaults parses the faults annotation (raw nil gives no faults).
func ParseFaults(raw *string) (f *Faults, err error) {
	f = &Faults{}
	if raw == nil {
		return f, nil
	}
	defer catch(&err)
	p := FaultsAnnotation
	j := parseJSONOrFail(*raw, p)
	o, ok := isObject(j)
	if !ok {
		fail(p, "must be a JSON object")
	}
	checkKeys(o, FaultKeys, p)
	f.Keys = append([]string{}, o.keys...)
	fl := func(k string, min float64, excl bool) *float64 {
		v := num(o.vals[k], p+": "+k, min, excl)
		return &v
	}
	in := func(k string, min float64) *int64 {
		v := intv(o.vals[k], p+": "+k, min, maxSafeInteger)
		return &v
	}
	if o.has("tlsAlertSeconds") {
		f.TLSAlertSeconds = fl("tlsAlertSeconds", 0, true)
	}
	if o.has("cutEveryBytes") {
		f.CutEveryBytes = in("cutEveryBytes", 1)
	}
	if o.has("terminatedDelaySeconds") {
		f.TerminatedDelaySeconds = fl("terminatedDelaySeconds", 0, false)
	}
	if o.has("http500Count") {
		f.HTTP500Count = in("http500Count", 0)
	}
	if o.has("deleteAfterSeconds") {
		f.DeleteAfterSeconds = fl("deleteAfterSeconds", 0, false)
	}
	if o.has("deleteGraceSeconds") {
		if !o.has("deleteAfterSeconds") {
			fail(p+": deleteGraceSeconds", "needs deleteAfterSeconds")
		}
		f.DeleteGraceSeconds = in("deleteGraceSeconds", 0)
	}
	if o.has("endStreamAfterBytes") {
		f.EndStreamAfterBytes = in("endStreamAfterBytes", 1)
	}
	if o.has("stallAfterBytes") {
		f.StallAfterBytes = in("stallAfterBytes", 0)
	}
	if o.has("containerLogMaxSize") {
		v := parseSize(o.vals["containerLogMaxSize"], p+": containerLogMaxSize")
		f.ContainerLogMaxSize = &v
	}
	if o.has("timestampOffset") {
		v := o.vals["timestampOffset"]
		s, ok := v.(string)
		sec, good := 0, false
		if ok {
			sec, good = ParseOffset(s)
		}
		if !good {
			fail(p+": timestampOffset", fmt.Sprintf(`must be a UTC offset "+hh:mm" or "-hh:mm" (hh 00-23, mm 00-59), got %s`, stringify(v)))
		}
		f.TimestampOffset = &s
		f.OffsetSeconds = sec
	}
	return f, nil
}
