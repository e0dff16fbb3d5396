package handover

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// maxSocketPath is the longest path a Unix socket can be bound to
// (sockaddr_un's sun_path, less its terminating NUL).
const maxSocketPath = 107

// Listener is the old side: it listens on SocketPath and hands Accept the
// requests that said hello, one hand-over at a time. Requests that come
// while one is in progress are refused.
type Listener struct {
	ln    *net.UnixListener
	path  string
	made  os.FileInfo // the socket file Listen made, the only one Close removes
	log   *slog.Logger
	ready chan *Outgoing // greeted, waiting for Accept
	done  chan struct{}  // closed by Close
	wg    sync.WaitGroup // the accept loop and the greetings it started
	once  sync.Once

	mu       sync.Mutex
	closed   bool
	active   *Outgoing                  // greeted or accepted and not closed
	greeting map[*net.UnixConn]struct{} // connections saying hello, closed by Close
}

// Listen listens for hand-over requests on SocketPath(stateDir), a
// socket only its owner may use. Call it only while holding the state
// directory's lock: it replaces the socket there, whether left by a
// killed daemon or still open in one that is handing over to this one
// and has released the lock. A nil log discards the listener's logs.
func Listen(stateDir string, log *slog.Logger) (*Listener, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	path := SocketPath(stateDir)
	if err := checkReplaceable(path); err != nil {
		return nil, err
	}
	ln, made, err := bindPrivately(stateDir, path)
	if err != nil {
		return nil, err
	}
	l := &Listener{
		ln: ln, path: path, made: made, log: log,
		ready:    make(chan *Outgoing, 1),
		done:     make(chan struct{}),
		greeting: map[*net.UnixConn]struct{}{},
	}
	l.wg.Add(1)
	go l.acceptLoop()
	return l, nil
}

// checkReplaceable refuses to replace anything but a socket at path.
func checkReplaceable(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("handover: %w", err)
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("handover: %s is not a socket (mode %v): remove it", path, fi.Mode())
	}
	return nil
}

// bindPrivately listens on path with a socket that is never reachable by
// others: bound in a fresh 0700 directory, made 0600, then renamed into
// place, which also replaces a stale socket at once.
func bindPrivately(stateDir, path string) (*net.UnixListener, os.FileInfo, error) {
	dir, err := os.MkdirTemp(stateDir, ".ho")
	if err != nil {
		return nil, nil, fmt.Errorf("handover: %w", err)
	}
	defer os.RemoveAll(dir)
	tmp := filepath.Join(dir, "s")
	if len(tmp) > maxSocketPath || len(path) > maxSocketPath {
		return nil, nil, fmt.Errorf("handover: state directory %s: its path is too long to hold a Unix socket (%s is over %d bytes)", stateDir, tmp, maxSocketPath)
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, nil, fmt.Errorf("handover: %w", err)
	}
	ln.SetUnlinkOnClose(false) // Close removes the file if it is still this one
	made, err := func() (os.FileInfo, error) {
		if err := os.Chmod(tmp, 0o600); err != nil {
			return nil, err
		}
		if err := os.Rename(tmp, path); err != nil {
			return nil, err
		}
		return os.Lstat(path)
	}()
	if err != nil {
		ln.Close()
		return nil, nil, fmt.Errorf("handover: %w", err)
	}
	return ln, made, nil
}

// Accept waits for a hand-over request, accepts it and returns it, until
// ctx ends or the listener is closed. A requester that leaves before it
// is accepted is skipped.
func (l *Listener) Accept(ctx context.Context) (*Outgoing, error) {
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-l.done:
			return nil, fmt.Errorf("handover: %w", net.ErrClosed)
		case o := <-l.ready:
			err := o.w.writeFrame(ctx, message{Kind: kindAccepted}, nil)
			if err == nil {
				l.log.Info("handover: accepted", "pid", o.hello.PID, "version", o.hello.Version)
				return o, nil
			}
			o.Close()
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			l.log.Warn("handover: the new daemon left before it was accepted", "pid", o.hello.PID, "err", err)
		}
	}
}

// Close stops listening, refuses the requests not yet accepted and
// removes the socket file, unless another listener has replaced it since.
// A hand-over Accept returned is left to its Outgoing.
func (l *Listener) Close() error {
	var err error
	l.once.Do(func() {
		// Removed while the listening socket still holds its inode, so
		// that a later socket cannot reuse the inode and pass for it.
		if fi, statErr := os.Lstat(l.path); statErr == nil && os.SameFile(fi, l.made) {
			_ = os.Remove(l.path)
		}
		l.mu.Lock()
		l.closed = true
		for c := range l.greeting {
			c.Close()
		}
		l.mu.Unlock()
		close(l.done)
		err = l.ln.Close()
		l.wg.Wait()
		select {
		case o := <-l.ready:
			refuse(context.Background(), o.w, "the daemon stopped taking hand-overs")
			o.Close()
		default:
		}
	})
	return err
}

func (l *Listener) acceptLoop() {
	defer l.wg.Done()
	for {
		c, err := l.ln.AcceptUnix()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil { // such as too many open files: wait for some to close
			l.log.Warn("handover: accept", "err", err)
			select {
			case <-l.done:
				return
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			c.Close()
			return
		}
		l.greeting[c] = struct{}{}
		l.wg.Add(1)
		l.mu.Unlock()
		go l.greet(c)
	}
}

// greet reads a request's hello and queues it for Accept, or refuses it
// with the reason.
func (l *Listener) greet(c *net.UnixConn) {
	defer l.wg.Done()
	ctx, cancel := context.WithTimeout(context.Background(), DefaultTimeout)
	defer cancel()
	w := wire{c: c}
	err := checkPeer(c)
	if err == nil {
		var m message
		m, _, err = w.readFrame(ctx, kindHello)
		if err == nil {
			err = l.claim(w, Hello{PID: m.PID, Version: m.Version})
		}
	}
	l.mu.Lock()
	delete(l.greeting, c)
	l.mu.Unlock()
	if err != nil {
		l.log.Warn("handover: request refused", "err", err)
		refuse(ctx, w, err.Error())
		c.Close()
	}
}

// refuse tells the new side why its request is turned down, if it still
// listens.
func refuse(ctx context.Context, w wire, reason string) {
	_ = w.writeFrame(ctx, message{Kind: kindRefused, Reason: reason}, nil)
}

// claim makes the greeted request the hand-over in progress, if there is
// none, and queues it for Accept.
func (l *Listener) claim(w wire, h Hello) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return errors.New("the daemon stopped taking hand-overs")
	}
	if l.active != nil {
		return fmt.Errorf("a hand-over to pid %d is in progress", l.active.hello.PID)
	}
	l.active = &Outgoing{session: session{w: w, next: stageFiles}, hello: h, l: l}
	l.ready <- l.active // never blocks: it holds one, and only the active one is queued
	return nil
}

// release lets another hand-over begin once o is closed.
func (l *Listener) release(o *Outgoing) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.active == o {
		l.active = nil
	}
}
