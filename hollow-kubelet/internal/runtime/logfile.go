package runtime

import (
	"fmt"
	"os"
	"sync"
	"time"

	"logtail.dev/hollow-kubelet/internal/script"
)

// The CRI log format containerd writes and the kubelet's reader
// (k8s.io/cri-client/pkg/logs, parseCRILog) parses:
//
//	<timestamp> <stdout|stderr> <P|F> <content>\n
//
// A partial record (P) gets a newline on disk that is not part of the
// content. Timestamps are written fixed-width with nine fraction digits (the
// layout the kubelet itself prints, RFC3339NanoFixed in logs.go), so every
// record costs 40 bytes plus its content (plus 1 for a partial record's
// newline) with "Z" — the same size model as the simulator's
// criRecordSize — and 45 with a "±hh:mm" offset.
const tsLayout = "2006-01-02T15:04:05.000000000Z07:00"

// rotatedSuffixLayout is the suffix the kubelet's log manager gives a
// rotated file (pkg/kubelet/logs/container_log_manager.go, timestampFormat).
const rotatedSuffixLayout = "20060102-150405"

const flushAt = 256 << 10

// logWriter writes one container run's CRI log file and its recorded output.
type logWriter struct {
	mu      sync.Mutex
	path    string
	f       *os.File
	size    int64 // bytes in the current file (written)
	buf     []byte
	rec     *os.File
	recBuf  []byte
	maxSize int64 // runtime-side rotation (containerLogMaxSize fault); 0: none
	zone    *time.Location
	closed  bool
	err     error
}

func newLogWriter(path, recordPath string, maxSize int64, zone *time.Location) (*logWriter, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	w := &logWriter{path: path, f: f, size: st.Size(), maxSize: maxSize, zone: zone}
	if recordPath != "" {
		rec, err := os.OpenFile(recordPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
		if err != nil {
			f.Close()
			return nil, err
		}
		w.rec = rec
	}
	return w, nil
}

// Record implements script.Sink.
func (w *logWriter) Record(tsNs int64, stream script.Stream, partial bool, content []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return fmt.Errorf("log closed")
	}
	w.buf = time.Unix(0, tsNs).In(w.zone).AppendFormat(w.buf, tsLayout)
	w.buf = append(w.buf, ' ')
	w.buf = append(w.buf, stream.String()...)
	if partial {
		w.buf = append(w.buf, " P "...)
		w.buf = append(w.buf, content...)
		w.buf = append(w.buf, '\n')
	} else {
		w.buf = append(w.buf, " F "...)
		w.buf = append(w.buf, content...)
	}
	w.recBuf = append(w.recBuf, content...)
	if w.maxSize > 0 && w.size+int64(len(w.buf)) >= w.maxSize {
		// Like the simulator's store: the record that reaches the limit is
		// the last one of the file.
		if err := w.flushLocked(); err != nil {
			return err
		}
		return w.rotateLocked()
	}
	if len(w.buf) >= flushAt {
		return w.flushLocked()
	}
	return nil
}

func (w *logWriter) flushLocked() error {
	if w.err != nil {
		return w.err
	}
	// The recorded output first: once a record is readable through the
	// kubelet, its bytes are in the recorded file.
	if w.rec != nil && len(w.recBuf) > 0 {
		if _, err := w.rec.Write(w.recBuf); err != nil {
			w.err = err
			return err
		}
	}
	w.recBuf = w.recBuf[:0]
	if len(w.buf) > 0 {
		// One write of whole records, so a reader never sees half a record
		// unless it reads while the kernel copies.
		n, err := w.f.Write(w.buf)
		w.size += int64(n)
		if err != nil {
			w.err = err
			return err
		}
	}
	w.buf = w.buf[:0]
	return nil
}

func (w *logWriter) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	return w.flushLocked()
}

// rotateLocked does what the kubelet's log manager does (rotateLatestLog):
// rename the file to <path>.<YYYYMMDD-hhmmss> and continue in a new file.
func (w *logWriter) rotateLocked() error {
	rotated := w.path + "." + time.Now().Format(rotatedSuffixLayout)
	if err := os.Rename(w.path, rotated); err != nil {
		w.err = err
		return err
	}
	return w.reopenLocked()
}

func (w *logWriter) reopenLocked() error {
	f, err := os.OpenFile(w.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		w.err = err
		return err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		w.err = err
		return err
	}
	w.f.Close()
	w.f = f
	w.size = st.Size()
	return nil
}

// Reopen is ReopenContainerLog: the kubelet renamed the file and wants the
// container to continue in a new one at the same path.
func (w *logWriter) Reopen() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return fmt.Errorf("container is not running")
	}
	if err := w.flushLocked(); err != nil {
		return err
	}
	return w.reopenLocked()
}

func (w *logWriter) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	err := w.flushLocked()
	w.closed = true
	w.f.Close()
	if w.rec != nil {
		w.rec.Close()
	}
	return err
}
