package standalone

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// listenerSet opens every listening socket of the daemon: the proxies'
// frontends and the control API. It is the one place that does, so that
// the sockets systemd or a daemon handing over passed are taken here
// instead of opened anew.
type listenerSet struct {
	// inherited are the passed sockets not taken yet; nil for none.
	inherited *inheritedSockets
}

// listen takes the inherited socket that matches addr, or opens a TCP
// listener on addr.
func (s *listenerSet) listen(addr string) (net.Listener, error) {
	if ln, ok := s.inherited.take(addr); ok {
		return ln, nil
	}
	return net.Listen("tcp", addr)
}

// acceptor accepts the connections of one listener and hands each to the
// feed of the server serving it now. Servers come and go on a listener
// (a reload changing its settings) without closing it, so no connection
// is refused meanwhile.
type acceptor struct {
	ln      net.Listener
	log     *slog.Logger
	current atomic.Pointer[feed]
	started atomic.Bool
	done    chan struct{} // closed when run returns
}

func newAcceptor(ln net.Listener, log *slog.Logger) *acceptor {
	return &acceptor{ln: ln, log: log, done: make(chan struct{})}
}

// close closes the listener and waits until run has handed on the
// connection it accepted last, so that the servers may shut down without
// closing a connection no server has seen: its request would fail.
func (a *acceptor) close(ctx context.Context) {
	a.ln.Close()
	if !a.started.Load() {
		return
	}
	select {
	case <-a.done:
	case <-ctx.Done():
	}
}

// newFeed makes a feed and sends the next connections to it.
func (a *acceptor) newFeed() *feed {
	f := &feed{conns: make(chan net.Conn), done: make(chan struct{}), addr: a.ln.Addr()}
	a.current.Store(f)
	return f
}

// run accepts until the listener is closed; it runs once.
func (a *acceptor) run() {
	if !a.started.CompareAndSwap(false, true) {
		return
	}
	defer close(a.done)
	for {
		c, err := a.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			a.log.Warn("accepting a connection failed", "addr", a.ln.Addr().String(), "err", err)
			time.Sleep(acceptRetry) // out of file descriptors, most likely
			continue
		}
		a.deliver(c)
	}
}

// acceptRetry is the wait after a failed accept.
const acceptRetry = 10 * time.Millisecond

// deliver hands c to the current feed; a feed closed meanwhile passes it
// on to the one that replaced it. With no server left, c is closed.
func (a *acceptor) deliver(c net.Conn) {
	for {
		f := a.current.Load()
		select {
		case f.conns <- c:
			return
		case <-f.done:
			if a.current.Load() == f {
				c.Close()
				return
			}
		}
	}
}

// feed is the listener one server accepts on: the connections its
// acceptor hands it. Closing it (the server's Shutdown does) closes no
// socket.
type feed struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
	addr  net.Addr
}

// Accept implements net.Listener.
func (f *feed) Accept() (net.Conn, error) {
	select {
	case c := <-f.conns:
		return c, nil
	case <-f.done:
		return nil, net.ErrClosed
	}
}

// Close implements net.Listener.
func (f *feed) Close() error {
	f.once.Do(func() { close(f.done) })
	return nil
}

// Addr implements net.Listener.
func (f *feed) Addr() net.Addr { return f.addr }
