package target

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// DefaultMaxLogBytes bounds a version's log file; past it the file is
// renamed to NAME.log.1 (replacing the previous one) and a new one begun.
const DefaultMaxLogBytes = 10 << 20

// maxLogLine bounds the bytes a replica can write without a newline before
// they are logged as a line anyway, so a runaway writer cannot fill memory.
const maxLogLine = 64 << 10

// logSet hands out one log file per version, shared by its replicas and by
// a draining and a new instance of the same version.
type logSet struct {
	dir string
	max int64
	log *slog.Logger

	mu    sync.Mutex
	files map[string]*logFile
}

// logFile is a size-bounded log file: whole lines only, rotated once.
type logFile struct {
	path string
	max  int64
	log  *slog.Logger
	refs int // guarded by logSet.mu

	mu   sync.Mutex
	f    *os.File
	size int64
}

// logPath is where a version's output goes. Labels are free text; only
// characters safe in a file name are kept.
func logPath(dir, version string) string {
	safe := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-', r == '_':
			return r
		}
		return '_'
	}, version)
	if safe == "" || strings.Trim(safe, ".") == "" {
		safe = "_" + safe
	}
	return filepath.Join(dir, safe+".log")
}

func (s *logSet) acquire(version string) (*logFile, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if lf, ok := s.files[version]; ok {
		lf.refs++
		return lf, nil
	}
	lf := &logFile{path: logPath(s.dir, version), max: s.max, log: s.log, refs: 1}
	if err := lf.open(); err != nil {
		return nil, err
	}
	s.files[version] = lf
	return lf, nil
}

func (s *logSet) release(version string, lf *logFile) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if lf.refs--; lf.refs > 0 {
		return
	}
	delete(s.files, version)
	lf.mu.Lock()
	defer lf.mu.Unlock()
	_ = lf.f.Close()
}

func (lf *logFile) open() error {
	f, err := os.OpenFile(lf.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("opening the log file: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return fmt.Errorf("opening the log file: %w", err)
	}
	lf.f, lf.size = f, fi.Size()
	return nil
}

// writeLine appends prefix+line+"\n", rotating first if it would not fit.
// Errors are logged, not returned: a replica must never block or fail
// because its log cannot be written.
func (lf *logFile) writeLine(prefix string, line []byte) {
	lf.mu.Lock()
	defer lf.mu.Unlock()
	n := int64(len(prefix) + len(line) + 1)
	if lf.size > 0 && lf.size+n > lf.max {
		lf.rotateLocked()
	}
	if lf.f == nil {
		return
	}
	buf := make([]byte, 0, n)
	buf = append(append(append(buf, prefix...), line...), '\n')
	m, err := lf.f.Write(buf)
	lf.size += int64(m)
	if err != nil {
		lf.log.Warn("cannot write a process log", "file", lf.path, "err", err)
	}
}

func (lf *logFile) rotateLocked() {
	_ = lf.f.Close()
	if err := os.Rename(lf.path, lf.path+".1"); err != nil {
		lf.log.Warn("cannot rotate a process log", "file", lf.path, "err", err)
	}
	if err := lf.open(); err != nil {
		lf.log.Warn("cannot reopen a process log", "file", lf.path, "err", err)
		lf.f, _ = os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	}
}

// lineWriter turns one replica's output into prefixed lines of its
// version's log file. Only its outputReader calls it.
type lineWriter struct {
	lf      *logFile
	prefix  string
	partial []byte
}

// Write never fails: the replica must not block or die on its next write
// because its log cannot be written.
func (w *lineWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			w.partial = append(w.partial, p...)
			if len(w.partial) >= maxLogLine {
				w.flush()
			}
			break
		}
		w.partial = append(w.partial, p[:i]...)
		w.flush()
		p = p[i+1:]
	}
	return n, nil
}

// flush writes out what is buffered as one line, once the outputReader
// stopped calling Write.
func (w *lineWriter) flush() {
	if len(w.partial) == 0 {
		return
	}
	w.lf.writeLine(w.prefix, w.partial)
	w.partial = w.partial[:0]
}

// outputReader copies the read end of a replica's output pipe into its
// lineWriter. pipit creates the pipe itself, rather than letting exec
// make one, so that the read end can be handed to the next daemon: a
// pipe whose reader is gone would kill the replica with SIGPIPE.
type outputReader struct {
	r    *os.File // pollable, so that read deadlines stop the copy
	w    *lineWriter
	done chan struct{}
}

func readOutput(r *os.File, w *lineWriter) *outputReader {
	o := &outputReader{r: r, w: w, done: make(chan struct{})}
	go o.copy()
	return o
}

func (o *outputReader) copy() {
	defer close(o.done)
	buf := make([]byte, 32<<10)
	for {
		n, err := o.r.Read(buf)
		_, _ = o.w.Write(buf[:n])
		if err != nil {
			return
		}
	}
}

// finish reads, once the replica exited, the rest of its output until
// the pipe closes or exitWaitDelay passed (children it left may hold the
// pipe open), flushes the last line and closes the pipe.
func (o *outputReader) finish() {
	_ = o.r.SetReadDeadline(time.Now().Add(exitWaitDelay))
	<-o.done
	o.w.flush()
	_ = o.r.Close()
}

// detach stops the copy at once, leaving what is unread in the pipe, and
// returns the still open read end.
func (o *outputReader) detach() *os.File {
	_ = o.r.SetReadDeadline(time.Unix(1, 0))
	<-o.done
	o.w.flush()
	return o.r
}
