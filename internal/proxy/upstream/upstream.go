// Package upstream is the proxy's own HTTP/1.1 client of its upstreams,
// used by the fast path: for each version a Group of endpoints (one per
// replica address) spread round-robin, each with a pool of keep-alive
// connections that are checked for stray bytes before reuse (see
// conn.quiet), and the round trip with its retries (Group.Send). The
// retry rule (MayRetry) is the one both forwarding paths follow; the
// net/http path takes it through RetryTransport.
package upstream

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Group is the endpoints of one version of the service, one per replica
// address, over which requests are spread round-robin. It is immutable
// but for the round-robin position and which endpoints are in rotation;
// a new set of replicas is a new Group, which may share the endpoints
// (and their connections) of those that stay.
type Group struct {
	endpoints []*Endpoint
	// rotation are the endpoints requests go to, when some are out of
	// rotation; nil when all are in.
	rotation atomic.Pointer[[]*Endpoint]
	next     atomic.Uint32 // round-robin position over the rotation
	rewrite  bool          // some endpoint has a base path or query: see Endpoint.targetFor
}

// NewGroup returns the group of endpoints; none is a version with no
// ready replica. Endpoints out of rotation in another group stay out.
func NewGroup(endpoints []*Endpoint) *Group {
	g := &Group{endpoints: endpoints}
	for _, ep := range endpoints {
		g.rewrite = g.rewrite || ep.base
	}
	g.rotate()
	return g
}

// SetOutOfRotation takes the endpoints whose base URLs are listed in out
// out of rotation, and puts the others back. Requests in flight finish
// where they are. With every endpoint out, all stay in rotation: a
// request has nowhere better to go. Calls, and NewGroup of groups sharing
// endpoints, must not run at the same time.
func (s *Group) SetOutOfRotation(out []string) {
	for _, ep := range s.endpoints {
		ep.out.Store(slices.Contains(out, ep.url.String()))
	}
	s.rotate()
}

// rotate sets the rotation from the endpoints' marks.
func (s *Group) rotate() {
	var in []*Endpoint
	for _, ep := range s.endpoints {
		if !ep.out.Load() {
			in = append(in, ep)
		}
	}
	if len(in) == 0 || len(in) == len(s.endpoints) {
		s.rotation.Store(nil)
		return
	}
	s.rotation.Store(&in)
}

// Endpoints are the group's endpoints, in order; the caller must not
// change the slice.
func (s *Group) Endpoints() []*Endpoint { return s.endpoints }

// Pick returns the endpoint for a request's attempt, among those in
// rotation: round-robin for the first (attempt 0, which sets first), and
// the following ones in order for retries, so a retry goes to another
// replica when there is one.
func (s *Group) Pick(first *uint32, attempt int) *Endpoint {
	endpoints := s.endpoints
	if r := s.rotation.Load(); r != nil {
		endpoints = *r
	}
	n := uint32(len(endpoints))
	if n == 1 {
		return endpoints[0]
	}
	if attempt == 0 {
		*first = s.next.Add(1)
	}
	return endpoints[(*first+uint32(attempt))%n]
}

// CloseIdle closes the idle connections of every endpoint.
func (s *Group) CloseIdle() {
	for _, ep := range s.endpoints {
		ep.pool.closeIdle()
	}
}

// Endpoint is one address of an upstream version with its pool of
// keep-alive connections.
type Endpoint struct {
	url  *url.URL
	host string // Host header sent upstream, as httputil's SetURL does
	// base is the URL's path and query, under which request targets
	// are joined (see targetFor); empty when the URL has neither.
	base bool
	pool connPool
	// out marks an endpoint taken out of rotation (Group.SetOutOfRotation);
	// it stays out in the next group of its version.
	out atomic.Bool
}

// NewEndpoint returns the endpoint of u, an http or https URL with a
// host, whose connections follow cfg.
func NewEndpoint(u *url.URL, cfg *Config) *Endpoint {
	addr := u.Host
	if u.Port() == "" {
		port := "80"
		if u.Scheme == "https" {
			port = "443"
		}
		addr = net.JoinHostPort(u.Hostname(), port)
	}
	ep := &Endpoint{url: u, host: u.Host, base: (u.Path != "" && u.Path != "/") || u.RawQuery != ""}
	ep.pool = connPool{addr: addr, cfg: cfg}
	if u.Scheme == "https" {
		ep.pool.tls = &tls.Config{ServerName: u.Hostname(), NextProtos: []string{"http/1.1"}, MinVersion: tls.VersionTLS12}
	}
	return ep
}

// URL is the endpoint's base URL.
func (ep *Endpoint) URL() *url.URL { return ep.url }

// CloseIdle closes the endpoint's idle connections.
func (ep *Endpoint) CloseIdle() { ep.pool.closeIdle() }

// Config is what the connections to upstreams need; every field must be
// set.
type Config struct {
	// DialTimeout bounds connecting, TLS handshake included.
	DialTimeout time.Duration
	// HeaderTimeout bounds the wait for the head of an answer once the
	// request is sent.
	HeaderTimeout time.Duration
	// IdleTimeout is how long an idle keep-alive connection is kept.
	IdleTimeout time.Duration
	// MaxIdle is how many idle keep-alive connections an endpoint keeps.
	MaxIdle int
	// ClientFault reports whether a failure to send a request was the
	// client's doing (reading its body failed); such a failure is passed
	// on as it is, never taken for a connection the upstream closed. Nil
	// takes none for the client's.
	ClientFault func(error) bool
}

// conn is one connection to an upstream with its buffers.
type conn struct {
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
func (c *conn) quiet() bool {
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
	cfg  *Config

	mu       sync.Mutex
	idle     []*conn
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
func (p *connPool) get() (*conn, error) {
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

func (p *connPool) dial() (*conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), p.cfg.DialTimeout)
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
	return &conn{
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
func (p *connPool) put(c *conn) {
	if c.br.Buffered() > 0 {
		c.Close()
		return
	}
	c.reused = true
	c.idleSince = time.Now()
	p.mu.Lock()
	if len(p.idle) >= p.cfg.MaxIdle {
		p.mu.Unlock()
		c.Close()
		return
	}
	p.idle = append(p.idle, c)
	schedule := !p.cleaning
	p.cleaning = true
	p.mu.Unlock()
	if schedule {
		time.AfterFunc(p.cfg.IdleTimeout, p.clean)
	}
}

// clean closes the connections idle for longer than the idle timeout, and
// comes back while some are left.
func (p *connPool) clean() {
	cutoff := time.Now().Add(-p.cfg.IdleTimeout)
	p.mu.Lock()
	n := 0
	for n < len(p.idle) && p.idle[n].idleSince.Before(cutoff) {
		n++
	}
	stale := make([]*conn, n)
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
		time.AfterFunc(p.cfg.IdleTimeout/2+time.Millisecond, p.clean)
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
