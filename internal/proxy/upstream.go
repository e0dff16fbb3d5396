package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// upstreamState is the live side of an Upstream: one endpoint per replica
// address, and the outlier detector's count. Every backend built for an
// upstream has its own, so a new version starts with fresh connections and
// a clean record.
type upstreamState struct {
	version   []byte // the Version, for the version header
	endpoints []*endpoint
	next      atomic.Uint32 // round-robin position over endpoints
	rewrite   bool          // some endpoint has a base path or query: see endpoint.targetFor
	// failures counts 5xx answers and transport errors in a row; any
	// other answer resets it. See Proxy.account.
	failures atomic.Int64
}

func newUpstreamState(up Upstream, t *transportConfig) *upstreamState {
	st := &upstreamState{version: []byte(up.Version)}
	for _, u := range append([]*url.URL{up.URL}, up.Replicas...) {
		ep := newEndpoint(u, t)
		st.rewrite = st.rewrite || ep.base
		st.endpoints = append(st.endpoints, ep)
	}
	return st
}

// pick returns the endpoint for a request's attempt: round-robin for the
// first, and the following ones in order for retries, so a retry goes to
// another replica when there is one.
func (s *upstreamState) pick(first *uint32, attempt int) *endpoint {
	n := uint32(len(s.endpoints))
	if n == 1 {
		return s.endpoints[0]
	}
	if attempt == 0 {
		*first = s.next.Add(1)
	}
	return s.endpoints[(*first+uint32(attempt))%n]
}

func (s *upstreamState) closeIdle() {
	for _, ep := range s.endpoints {
		ep.pool.closeIdle()
	}
}

// endpoint is one address of an upstream version with its pool of
// keep-alive connections, used by the HTTP/1.1 fast path.
type endpoint struct {
	url  *url.URL
	host string // Host header sent upstream, as httputil's SetURL does
	// base is the URL's path and query, under which request targets
	// are joined (see targetFor); empty when the URL has neither.
	base bool
	pool connPool
}

func newEndpoint(u *url.URL, t *transportConfig) *endpoint {
	addr := u.Host
	if u.Port() == "" {
		port := "80"
		if u.Scheme == "https" {
			port = "443"
		}
		addr = net.JoinHostPort(u.Hostname(), port)
	}
	ep := &endpoint{url: u, host: u.Host, base: (u.Path != "" && u.Path != "/") || u.RawQuery != ""}
	ep.pool = connPool{addr: addr, cfg: t}
	if u.Scheme == "https" {
		ep.pool.tls = &tls.Config{ServerName: u.Hostname(), NextProtos: []string{"http/1.1"}, MinVersion: tls.VersionTLS12}
	}
	return ep
}

// transportConfig is what the fast path's connections need from Config.
type transportConfig struct {
	dialTimeout   time.Duration
	headerTimeout time.Duration
	idleTimeout   time.Duration
	maxIdle       int
}

// upConn is one connection to an upstream with its buffers.
type upConn struct {
	net.Conn
	br        *bufio.Reader
	bw        *bufio.Writer
	reused    bool      // it served a request before: the peer may have closed it since
	idleSince time.Time // when it went back to the pool
	// socket peeks at the TCP socket under the connection (see quiet);
	// nil when there is none.
	socket *socketPeeker
	tls    bool // Conn is a *tls.Conn, which may hold bytes the socket no longer has
}

// quiet reports whether an idle connection may carry a new request:
// nothing has arrived on it since the end of its last answer. Bytes that
// arrived (an answer nobody asked for, or one that ran past its framing)
// would be read as the next request's answer and hand one user another's
// response; an end of stream means the upstream closed it. Either way the
// connection must go. Go's transport finds the same with a reader
// goroutine per connection; one non-blocking peek at the socket costs less.
func (c *upConn) quiet() bool {
	if c.br.Buffered() > 0 {
		return false
	}
	if c.tls {
		// crypto/tls may have read a whole record ahead of what bufio
		// asked for. A read past its deadline returns what it has
		// decrypted or buffered, and fails at once (harmlessly: a timeout
		// is not sticky in crypto/tls) when it would have to wait.
		_ = c.SetReadDeadline(aLongTimeAgo)
		_, err := c.br.Peek(1)
		_ = c.SetReadDeadline(time.Time{})
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			return false
		}
	}
	return c.socket == nil || c.socket.quiet()
}

// aLongTimeAgo is a deadline in the past: a read with it returns at once.
var aLongTimeAgo = time.Unix(1, 0)

// upstreamBufferSize is the read and write buffer of one upstream
// connection; response heads must fit in it.
const upstreamBufferSize = 16 << 10

// connPool keeps idle keep-alive connections to one address, newest last:
// the most recently used connection is taken first, so under light load
// the old ones age out instead of all being kept barely alive.
type connPool struct {
	addr string
	tls  *tls.Config
	cfg  *transportConfig

	mu       sync.Mutex
	idle     []*upConn
	cleaning bool // a cleanup is scheduled
}

// errDial marks a failure to connect: nothing was sent, so any request
// may be retried.
type errDial struct{ err error }

func (e *errDial) Error() string { return e.err.Error() }
func (e *errDial) Unwrap() error { return e.err }

// get returns an idle connection on which nothing has arrived since its
// last answer, or dials a new one. Idle connections that got bytes or an
// end of stream while in the pool are closed on the way.
func (p *connPool) get() (*upConn, error) {
	for {
		p.mu.Lock()
		n := len(p.idle)
		if n == 0 {
			p.mu.Unlock()
			return p.dial()
		}
		c := p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		if c.quiet() {
			return c, nil
		}
		c.Close()
	}
}

func (p *connPool) dial() (*upConn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), p.cfg.dialTimeout)
	defer cancel()
	d := net.Dialer{KeepAlive: 30 * time.Second}
	nc, err := d.DialContext(ctx, "tcp", p.addr)
	if err != nil {
		return nil, &errDial{err}
	}
	socket := newSocketPeeker(nc)
	if p.tls != nil {
		tc := tls.Client(nc, p.tls)
		if err := tc.HandshakeContext(ctx); err != nil {
			nc.Close()
			return nil, &errDial{fmt.Errorf("TLS handshake with %s: %w", p.addr, err)}
		}
		nc = tc
	}
	return &upConn{
		Conn:   nc,
		br:     bufio.NewReaderSize(nc, upstreamBufferSize),
		bw:     bufio.NewWriterSize(nc, upstreamBufferSize),
		socket: socket,
		tls:    p.tls != nil,
	}, nil
}

// put returns a connection whose last response was read to exactly its
// end. A connection with bytes past that end is closed instead: they are
// no answer to anything this proxy sent.
func (p *connPool) put(c *upConn) {
	if c.br.Buffered() > 0 {
		c.Close()
		return
	}
	c.reused = true
	c.idleSince = time.Now()
	p.mu.Lock()
	if len(p.idle) >= p.cfg.maxIdle {
		p.mu.Unlock()
		c.Close()
		return
	}
	p.idle = append(p.idle, c)
	schedule := !p.cleaning
	p.cleaning = true
	p.mu.Unlock()
	if schedule {
		time.AfterFunc(p.cfg.idleTimeout, p.clean)
	}
}

// clean closes the connections idle for longer than the idle timeout, and
// comes back while some are left.
func (p *connPool) clean() {
	cutoff := time.Now().Add(-p.cfg.idleTimeout)
	p.mu.Lock()
	n := 0
	for n < len(p.idle) && p.idle[n].idleSince.Before(cutoff) {
		n++
	}
	stale := make([]*upConn, n)
	copy(stale, p.idle[:n])
	p.idle = append(p.idle[:0], p.idle[n:]...)
	clear(p.idle[len(p.idle):cap(p.idle)])
	again := len(p.idle) > 0
	p.cleaning = again
	p.mu.Unlock()
	for _, c := range stale {
		c.Close()
	}
	if again {
		time.AfterFunc(p.cfg.idleTimeout/2+time.Millisecond, p.clean)
	}
}

// closeIdle closes every idle connection, as on shutdown or when one of
// them turned out dead (the upstream restarted and the others are too).
func (p *connPool) closeIdle() {
	p.mu.Lock()
	idle := p.idle
	p.idle = nil
	p.mu.Unlock()
	for _, c := range idle {
		c.Close()
	}
}

// isDialError reports whether err is a failure to connect, before any
// byte of the request went out.
func isDialError(err error) bool {
	var d *errDial
	if errors.As(err, &d) {
		return true
	}
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}
