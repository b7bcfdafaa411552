package script

// Turns a container's script into log records on a clock, exactly as the
// simulator's src/dev/simulator/output.ts does: each line is stamped when it
// is written, lines longer than 16 KiB become 16 KiB partial records (each
// 1 µs later than the one before unless the segment has bursts), and a last
// line without a newline is written as a partial record. The content bytes
// (line numbers, filler, labels) are the same as the simulator's, so a
// recorded file from either can be compared byte for byte.

import (
	"math"
	"strconv"
)

// MaxRecordBytes is the runtime's maximum record size (containerd splits
// longer lines into partial records).
const MaxRecordBytes = 16 * 1024

const chunkStepNs = 1000

var filler = []byte("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")

// Sink receives records: content is at most MaxRecordBytes (plus the newline
// of a full record) and is only valid during the call.
type Sink interface {
	Record(tsNs int64, stream Stream, partial bool, content []byte) error
}

type StepResult struct {
	Done bool
	// When the next line is due; HasNext false means more is due now (the
	// byte budget ran out).
	NextDue int64
	HasNext bool
}

// Generator is one run of one container.
type Generator struct {
	script    *ContainerScript
	startNs   int64
	label     []byte
	seg       int
	lineInSeg int
	lineNo    int
	segStart  int64
	segActive bool
	last      int64
	hasLast   bool
	groupTs   int64
	template  []byte
	textRep   int
	textPos   int
}

func NewGenerator(s *ContainerScript, startNs int64, container string, run int) *Generator {
	return &Generator{script: s, startNs: startNs, label: []byte(" " + container + " run=" + strconv.Itoa(run) + " ")}
}

// LastTimestamp is the timestamp of the last record written, if any.
func (g *Generator) LastTimestamp() (int64, bool) { return g.last, g.hasLast }

// LinesWritten counts lines written so far in this run.
func (g *Generator) LinesWritten() int { return g.lineNo }

func (g *Generator) hasMore(s *Segment) bool {
	if s.Generated {
		return g.lineInSeg < s.Lines
	}
	return len(s.Text) > 0 && g.textRep < s.Repeat
}

func jsRound(f float64) int64 {
	// Math.round: halves go up (towards +Infinity).
	return int64(math.Floor(f + 0.5))
}

func (g *Generator) startSegment(s *Segment) {
	base := g.startNs
	if g.hasLast {
		base = g.last
	}
	g.segStart = base + jsRound(s.PauseSeconds*1e9)
	g.segActive = true
	g.lineInSeg = 0
	g.textRep = 0
	g.textPos = 0
	g.template = nil
	if s.Generated {
		t := make([]byte, s.LineBytes)
		for i := 0; i < s.LineBytes-1; i++ {
			t[i] = filler[i%len(filler)]
		}
		if s.LineBytes-1 > 10 {
			// Buffer#write(label, 10, length): at most length bytes.
			n := s.LineBytes - 1 - 10
			if n > len(g.label) {
				n = len(g.label)
			}
			copy(t[10:10+n], g.label[:n])
		}
		t[s.LineBytes-1] = '\n'
		g.template = t
	}
}

func (g *Generator) nextGenerated(s *Segment) []byte {
	t := g.template
	digits := strconv.Itoa(g.lineNo + 1)
	for len(digits) < 10 {
		digits = "0" + digits
	}
	// The line number makes lines distinct, so a lost or doubled line shows.
	n := s.LineBytes - 1
	if n > 10 {
		n = 10
	}
	if n > 0 {
		copy(t[0:n], digits[len(digits)-n:])
	}
	return t
}

func (g *Generator) nextText(s *Segment) []byte {
	var parts [][]byte
	for {
		rest := s.Text[g.textPos:]
		nl := -1
		for i, b := range rest {
			if b == '\n' {
				nl = g.textPos + i
				break
			}
		}
		if nl >= 0 {
			parts = append(parts, s.Text[g.textPos:nl+1])
			g.textPos = nl + 1
			if g.textPos == len(s.Text) {
				g.textPos = 0
				g.textRep++
			}
			break
		}
		parts = append(parts, s.Text[g.textPos:])
		g.textPos = 0
		g.textRep++
		if g.textRep >= s.Repeat {
			break
		}
	}
	if len(parts) == 1 {
		return parts[0]
	}
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func (g *Generator) emit(sink Sink, line []byte, ts int64, stream Stream, shareTs bool) error {
	hasNl := len(line) > 0 && line[len(line)-1] == '\n'
	contentLen := len(line)
	if hasNl {
		contentLen--
	}
	pos := 0
	t := ts
	for {
		if contentLen-pos > MaxRecordBytes {
			if err := sink.Record(t, stream, true, line[pos:pos+MaxRecordBytes]); err != nil {
				return err
			}
			pos += MaxRecordBytes
			if !shareTs {
				t += chunkStepNs
			}
			continue
		}
		if err := sink.Record(t, stream, !hasNl, line[pos:]); err != nil {
			return err
		}
		break
	}
	g.last = t
	g.hasLast = true
	return nil
}

// Step writes every line due at now, up to a byte budget.
func (g *Generator) Step(now int64, budgetBytes int, sink Sink) (StepResult, error) {
	written := 0
	segs := g.script.Segments
	for {
		if g.seg >= len(segs) {
			return StepResult{Done: true}, nil
		}
		s := &segs[g.seg]
		if !g.segActive {
			g.startSegment(s)
		}
		if !g.hasMore(s) {
			g.seg++
			g.segActive = false
			continue
		}
		if written >= budgetBytes {
			return StepResult{}, nil
		}
		group := g.lineInSeg / s.Burst
		sched := g.segStart
		if s.LinesPerSecond != 0 {
			sched = g.segStart + int64(math.Floor((float64(group*s.Burst)/s.LinesPerSecond)*1e9))
		}
		if sched > now {
			return StepResult{NextDue: sched, HasNext: true}, nil
		}
		var ts int64
		if g.lineInSeg%s.Burst == 0 {
			if s.LinesPerSecond == 0 {
				ts = now
			} else {
				ts = sched
			}
			if g.hasLast && ts <= g.last {
				ts = g.last + 1
			}
			g.groupTs = ts
		} else {
			ts = g.groupTs
		}
		var line []byte
		if s.Generated {
			line = g.nextGenerated(s)
		} else {
			line = g.nextText(s)
		}
		stream := s.Stream
		if s.StderrEvery != 0 && (g.lineInSeg+1)%s.StderrEvery == 0 {
			stream = Stderr
		}
		if err := g.emit(sink, line, ts, stream, s.Burst > 1); err != nil {
			return StepResult{}, err
		}
		written += len(line)
		g.lineInSeg++
		g.lineNo++
	}
}
