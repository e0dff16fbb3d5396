package proxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// Server defaults, used where ServerConfig leaves a field zero.
const (
	DefaultReadHeaderTimeout   = 10 * time.Second
	DefaultReadTimeout         = time.Minute
	DefaultIdleTimeout         = 2 * time.Minute
	DefaultMaxRequestBodyBytes = 10 << 20
	DefaultMaxHeaderBytes      = 16 << 10
	// DefaultMaxConnections and DefaultMaxConnectionsPerClient bound the
	// connections a listener serves at once, overall and from one client
	// address.
	DefaultMaxConnections          = 10000
	DefaultMaxConnectionsPerClient = 256
)

// ServerConfig configures a Server. Zero values take the defaults above.
type ServerConfig struct {
	// CertFile and KeyFile, set together, make the server speak HTTPS
	// only, HTTP/2 or HTTP/1.1 as the client prefers (ALPN). The files
	// are looked at again at most once a second and reloaded when they
	// change, so a renewed certificate needs no restart.
	CertFile, KeyFile string
	// ReadHeaderTimeout bounds a TLS handshake and the wait for a new
	// connection's first bytes, and on HTTP/2 the reading of a request's
	// head.
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading an HTTP/1 request, head and body.
	ReadTimeout time.Duration
	// IdleTimeout closes keep-alive connections idle for this long.
	IdleTimeout time.Duration
	// MaxRequestBodyBytes is the largest request body accepted; a larger
	// one is answered 413 and never reaches an upstream.
	MaxRequestBodyBytes int64
	// MaxHeaderBytes is the largest request head accepted; a larger one
	// is answered 431.
	MaxHeaderBytes int
	// MaxConnections bounds the connections served at once; past it the
	// server stops accepting until one closes, and the kernel queues the
	// rest (as HAProxy's maxconn). Zero takes DefaultMaxConnections;
	// negative turns the bound off.
	MaxConnections int
	// MaxConnectionsPerClient bounds the connections of one client
	// address at once; a connection past it is closed as soon as it is
	// accepted. Behind a trusted proxy the client is the forwarded
	// address, and the bound applies to its requests in flight instead
	// (answered 429 past it). Zero takes DefaultMaxConnectionsPerClient;
	// negative turns the bound off.
	MaxConnectionsPerClient int
	// TrustedProxies are the peers whose forwarding headers
	// (X-Forwarded-For, Forwarded, X-Forwarded-Host and -Proto) are kept
	// and extended; from any other peer they are replaced. Behind a
	// trusted peer the client is the right-most X-Forwarded-For address
	// that is not a trusted proxy itself (see effectiveClientAddr).
	// Empty trusts no peer: a client's own forwarding headers never
	// reach an upstream, where the proxy used to append to them.
	TrustedProxies []netip.Prefix
	// DisableH2C turns off HTTP/2 over plain TCP (prior knowledge, as
	// gRPC clients and curl --http2-prior-knowledge speak it).
	DisableH2C bool
	// Logger receives connection errors at debug level and certificate
	// reloads; nil discards them.
	Logger *slog.Logger
}

// Server serves a Proxy or a Mux of them on one listener. HTTP/1.1 and
// HTTP/1.0 requests, the bulk of traffic, take the fast path (fasthttp's
// server and the proxy's own upstream connections); HTTP/2 (over TLS or
// h2c), protocol upgrades such as WebSocket, and handlers that have no
// fast path are served by net/http. Both make the same routing decision
// and count in the same statistics.
type Server struct {
	handler http.Handler
	fast    fastHandler // nil when handler has no fast path
	cfg     ServerConfig
	tls     *tls.Config
	certs   *certReloader // nil without TLS
	trust   trustedProxies
	log     *slog.Logger

	h1     *fasthttp.Server
	std    *http.Server
	h1Conn *connQueue // connections for the fast path
	stdCon *connQueue // connections for net/http

	// slots holds a token per connection served, MaxConnections in all;
	// nil when connections are not bounded.
	slots chan struct{}
	// clients counts each client's connections (MaxConnectionsPerClient);
	// forwarded counts the requests in flight of each client behind a
	// trusted proxy, under the same bound.
	clients, forwarded *clientCounter
	stopped            chan struct{} // closed by stop

	// running counts the goroutines Serve starts: the two inner servers
	// and the dispatch of each new connection. Close and Shutdown wait
	// for them; they are added only while the server is not closed.
	running sync.WaitGroup

	mu     sync.Mutex
	ln     net.Listener
	closed bool
	// failure is why an inner server stopped on its own; Serve returns it.
	failure error
	// dispatching are the connections whose protocol is being worked out
	// (TLS handshake, HTTP/2 preface); stop cuts their reads short.
	dispatching map[net.Conn]struct{}
}

// NewServer returns a server of h; Serve starts it. h is usually a *Proxy
// or a *Mux; any other handler is served by net/http alone.
func NewServer(h http.Handler, cfg ServerConfig) (*Server, error) {
	if h == nil {
		return nil, errors.New("proxy server: no handler")
	}
	if (cfg.CertFile == "") != (cfg.KeyFile == "") {
		return nil, errors.New("proxy server: set both the TLS certificate and key files, or neither")
	}
	if cfg.MaxRequestBodyBytes < 0 || cfg.MaxHeaderBytes < 0 {
		return nil, errors.New("proxy server: size limits cannot be negative")
	}
	cfg.ReadHeaderTimeout = orDefault(cfg.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	cfg.ReadTimeout = orDefault(cfg.ReadTimeout, DefaultReadTimeout)
	cfg.IdleTimeout = orDefault(cfg.IdleTimeout, DefaultIdleTimeout)
	if cfg.MaxRequestBodyBytes == 0 {
		cfg.MaxRequestBodyBytes = DefaultMaxRequestBodyBytes
	}
	if cfg.MaxHeaderBytes == 0 {
		cfg.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	trust, err := newTrustedProxies(cfg.TrustedProxies)
	if err != nil {
		return nil, fmt.Errorf("proxy server: %w", err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{handler: h, cfg: cfg, trust: trust, log: log, h1Conn: newConnQueue(), stdCon: newConnQueue(),
		stopped: make(chan struct{}), dispatching: map[net.Conn]struct{}{}}
	if n := orDefaultInt(cfg.MaxConnections, DefaultMaxConnections); n > 0 {
		s.slots = make(chan struct{}, n)
	}
	perClient := orDefaultInt(cfg.MaxConnectionsPerClient, DefaultMaxConnectionsPerClient)
	s.clients, s.forwarded = newClientCounter(perClient), newClientCounter(perClient)
	s.fast, _ = h.(fastHandler)
	if cfg.CertFile != "" {
		certs, err := newCertReloader(cfg.CertFile, cfg.KeyFile, log)
		if err != nil {
			return nil, fmt.Errorf("proxy server: %w", err)
		}
		s.certs = certs
		s.tls = &tls.Config{
			GetCertificate: certs.getCertificate,
			NextProtos:     []string{"h2", "http/1.1"},
			MinVersion:     tls.VersionTLS12,
		}
	}
	protocols := new(http.Protocols)
	protocols.SetHTTP1(true)
	protocols.SetHTTP2(true)
	protocols.SetUnencryptedHTTP2(!cfg.DisableH2C)
	s.std = &http.Server{
		Handler:           http.HandlerFunc(s.serveStd),
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
		Protocols:         protocols,
		ConnContext:       s.connContext,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	s.h1 = &fasthttp.Server{
		Handler:               s.serveH1,
		NoDefaultServerHeader: true,
		NoDefaultDate:         true,
		NoDefaultContentType:  true,
		ReadTimeout:           cfg.ReadTimeout,
		IdleTimeout:           cfg.IdleTimeout,
		// Bodies are streamed: fasthttp reads a few kilobytes of one
		// before the handler, which decides the rest (settleBody).
		StreamRequestBody:            true,
		MaxRequestBodySize:           int(cfg.MaxRequestBodyBytes),
		ReadBufferSize:               cfg.MaxHeaderBytes,
		KeepHijackedConns:            true,
		DisablePreParseMultipartForm: true,
		CloseOnShutdown:              true,
		ErrorHandler:                 answerBadRequest,
		Logger:                       fastLogger{log},
	}
	return s, nil
}

// Serve accepts connections on ln until Shutdown or Close, and then
// returns http.ErrServerClosed; it returns other errors of ln at once, and
// the error of an inner server (fast path or net/http) that stopped on its
// own, once that has closed the Server. A Server serves one listener.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	switch {
	case s.closed:
		s.mu.Unlock()
		return http.ErrServerClosed
	case s.ln != nil:
		s.mu.Unlock()
		return errors.New("proxy server: already serving")
	}
	s.ln = ln
	if s.fast != nil {
		s.running.Go(func() { s.serveInner("fast path", s.h1.Serve, s.h1Conn) })
	}
	s.running.Go(func() { s.serveInner("net/http", s.std.Serve, s.stdCon) })
	s.mu.Unlock()
	for {
		if !s.takeSlot() {
			return s.closedError()
		}
		c, err := ln.Accept()
		if err != nil {
			s.giveSlot()
			if s.isClosed() {
				return s.closedError()
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(10 * time.Millisecond) // out of file descriptors, most likely
				continue
			}
			_ = s.Close()
			return err
		}
		if c = s.admit(c); c != nil {
			s.startDispatch(c)
		}
	}
}

// serveInner runs one of the inner servers on its queue of connections.
// One that stops while the Server serves has failed: the failure is
// logged, kept for Serve to return, and the Server closed.
func (s *Server) serveInner(name string, serve func(net.Listener) error, q *connQueue) {
	err := serve(q)
	if s.isClosed() {
		return // stopped by Shutdown or Close, as it should
	}
	if err == nil {
		err = errors.New("returned")
	}
	err = fmt.Errorf("proxy server: the %s server stopped: %w", name, err)
	s.log.Error("proxy server failed", "err", err)
	s.mu.Lock()
	if s.failure == nil {
		s.failure = err
	}
	s.mu.Unlock()
	s.closeServers()
}

// closedError is what Serve returns once the server is closed: an inner
// server's failure, or http.ErrServerClosed.
func (s *Server) closedError() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failure != nil {
		return s.failure
	}
	return http.ErrServerClosed
}

// startDispatch dispatches c on a goroutine of the server's, or closes it
// when the server has closed meanwhile.
func (s *Server) startDispatch(c net.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		_ = c.Close()
		return
	}
	s.dispatching[c] = struct{}{}
	s.running.Go(func() {
		s.dispatch(c)
		s.mu.Lock()
		delete(s.dispatching, c)
		s.mu.Unlock()
	})
}

// takeSlot waits for a free place under MaxConnections; false when the
// server stopped meanwhile.
func (s *Server) takeSlot() bool {
	if s.slots == nil {
		return true
	}
	select {
	case s.slots <- struct{}{}:
		return true
	case <-s.stopped:
		return false
	}
}

func (s *Server) giveSlot() {
	if s.slots != nil {
		<-s.slots
	}
}

// admit returns c counted in the limits until it is closed, or closes it
// and returns nil when its client holds MaxConnectionsPerClient already.
// A trusted proxy's connections carry many clients each, so they are not
// counted per client.
func (s *Server) admit(c net.Conn) net.Conn {
	addr := peerAddr(c)
	perClient := !s.trust.contains(addr)
	if perClient && !s.clients.acquire(addr) {
		s.log.Debug("connection refused: too many from one client", "remote", c.RemoteAddr().String())
		_ = c.Close()
		s.giveSlot()
		return nil
	}
	return &countedConn{Conn: c, release: func() {
		if perClient {
			s.clients.release(addr)
		}
		s.giveSlot()
	}}
}

// ListenAndServe listens on the TCP address addr and calls Serve.
func (s *Server) ListenAndServe(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	return s.Serve(ln)
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// Shutdown stops accepting connections, closes idle ones, and waits for
// the requests in flight until ctx is done. Upgraded connections
// (WebSockets) are not waited for. The server's own goroutines are
// waited for in any case: they end once the inner servers have stopped.
func (s *Server) Shutdown(ctx context.Context) error {
	s.stop()
	errH1 := s.h1.ShutdownWithContext(ctx)
	errStd := s.std.Shutdown(ctx)
	s.h1Conn.Close()
	s.stdCon.Close()
	s.running.Wait()
	return errors.Join(errH1, errStd)
}

// Close closes the listener and the idle connections at once, and the
// HTTP/2 and upgraded ones; a request in flight on an HTTP/1 connection
// runs to its end. It waits for the server's own goroutines.
func (s *Server) Close() error {
	err := s.closeServers()
	s.running.Wait()
	return err
}

// closeServers is Close without the wait, for a goroutine of the server's.
func (s *Server) closeServers() error {
	s.stop()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_ = s.h1.ShutdownWithContext(ctx)
	s.h1Conn.Close()
	s.stdCon.Close()
	return s.std.Close()
}

// aLongTimeAgo is a deadline in the past: a read with it returns at once.
var aLongTimeAgo = time.Unix(1, 0)

// stop marks the server closed, closes its listener and cuts short the
// reads of the connections being dispatched.
func (s *Server) stop() {
	s.mu.Lock()
	if !s.closed {
		close(s.stopped)
	}
	s.closed = true
	ln := s.ln
	for c := range s.dispatching {
		_ = c.SetReadDeadline(aLongTimeAgo)
	}
	s.mu.Unlock()
	if ln != nil {
		_ = ln.Close()
	}
}

// dispatch sends a new connection to the server that speaks its
// protocol: HTTP/2 to net/http, HTTP/1 to the fast path.
func (s *Server) dispatch(c net.Conn) {
	if s.tls != nil {
		tc := tls.Server(c, s.tls)
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ReadHeaderTimeout)
		err := tc.HandshakeContext(ctx)
		cancel()
		if err != nil {
			s.log.Debug("TLS handshake failed", "remote", c.RemoteAddr().String(), "err", err)
			_ = c.Close()
			return
		}
		state := tc.ConnectionState()
		if state.NegotiatedProtocol == "h2" || s.fast == nil {
			s.stdCon.push(tc) // net/http sees a *tls.Conn and speaks HTTP/2 or 1.1 on it
			return
		}
		s.h1Conn.push(&serverConn{Conn: tc, info: newConnInfo(tc.RemoteAddr().String(), &state, s.trust)})
		return
	}
	if s.fast == nil {
		s.stdCon.push(c)
		return
	}
	sc := &serverConn{Conn: c, info: newConnInfo(c.RemoteAddr().String(), nil, s.trust)}
	if !s.cfg.DisableH2C {
		h2, err := sc.sniffPreface(s.cfg.ReadHeaderTimeout, s.stopped)
		if err != nil {
			_ = c.Close()
			return
		}
		if h2 {
			s.stdCon.push(sc)
			return
		}
	}
	s.h1Conn.push(sc)
}

// serveH1 is the fast path's handler: the request's target is put in
// normal form (or refused), then the request is answered there, or its
// connection is handed to net/http with the request still unread.
func (s *Server) serveH1(ctx *fasthttp.RequestCtx) {
	ambiguous, fault := checkRequestHead(&ctx.Request.Header)
	if fault != nil {
		answerClientFault(ctx, fault.status, fault.reason)
		return
	}
	if ambiguous {
		ctx.SetConnectionClose()
	}
	buf, err := settleBody(ctx, s.cfg.MaxRequestBodyBytes)
	defer releaseBodyBuffer(buf)
	if err != nil {
		answerClientFault(ctx, clientFaultStatus(err), err.Error())
		return
	}
	if info := connInfoOf(ctx); info.trusted {
		addr := forwardedClient(info, ctx.Request.Header.PeekAll("X-Forwarded-For"))
		if !s.forwarded.acquire(addr) {
			answerClientFault(ctx, http.StatusTooManyRequests, tooManyInFlight)
			return
		}
		defer s.forwarded.release(addr)
	}
	if !normalizeFastRequest(ctx) || s.fast.serveFast(ctx) {
		return
	}
	var info *connInfo
	if sc, ok := ctx.Conn().(*serverConn); ok {
		info = sc.info
	}
	req := &ctx.Request
	if req.IsBodyStream() {
		// Upgrades carry no body worth streaming; the replay below
		// must hold all of it.
		answerClientFault(ctx, http.StatusRequestEntityTooLarge, "request body too large for a protocol upgrade")
		return
	}
	body := req.Body()
	if len(body) > 0 || req.Header.ContentLength() != 0 {
		// The body was read whole, perhaps chunked: net/http reads it
		// again by its length, and not a byte of what follows.
		req.Header.SetContentLength(len(body))
	}
	if ambiguous && info != nil {
		info.closeAfterReplay = true
	}
	replay := append(bytes.Clone(req.Header.Header()), body...)
	ctx.HijackSetNoResponse(true)
	ctx.Hijack(func(c net.Conn) {
		s.stdCon.push(&serverConn{Conn: c, pending: replay, info: info})
	})
}

// serveStd is net/http's handler: it restores the TLS state of a
// connection handed over from the fast path and bounds request bodies as
// the fast path does.
func (s *Server) serveStd(w http.ResponseWriter, r *http.Request) {
	info := requestConnInfo(r)
	if info.closeAfterReplay {
		w.Header().Set("Connection", "close")
	}
	if r.TLS == nil {
		r.TLS = info.tls
	}
	if info.trusted {
		addr := forwardedClient(info, r.Header["X-Forwarded-For"])
		if !s.forwarded.acquire(addr) {
			http.Error(w, tooManyInFlight, http.StatusTooManyRequests)
			return
		}
		defer s.forwarded.release(addr)
	}
	if r.Body != nil && r.Body != http.NoBody {
		if r.ContentLength > s.cfg.MaxRequestBodyBytes {
			http.Error(w, "request body too large", http.StatusRequestEntityTooLarge)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxRequestBodyBytes)
	}
	s.handler.ServeHTTP(w, r)
}

// answerBadRequest is the fast path's answer to a request it could not
// read; such requests never reach a handler, nor the statistics.
func answerBadRequest(ctx *fasthttp.RequestCtx, err error) {
	var small *fasthttp.ErrSmallBuffer
	var ne net.Error
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		ctx.Error("request body too large", http.StatusRequestEntityTooLarge)
	case errors.As(err, &small):
		ctx.Error("request header too large", http.StatusRequestHeaderFieldsTooLarge)
	case errors.As(err, &ne) && ne.Timeout():
		ctx.Error("request timeout", http.StatusRequestTimeout)
	default:
		ctx.Error("malformed request", http.StatusBadRequest)
	}
}

// connContext is http.Server.ConnContext: it carries the facts of the
// connection (connInfo) to its requests, for requestConnInfo. Those of a
// connection handed over from the fast path were worked out there, TLS
// state included, which net/http cannot see through the wrapper; those
// of a connection given to net/http directly are worked out now.
func (s *Server) connContext(ctx context.Context, c net.Conn) context.Context {
	var info *connInfo
	switch c := c.(type) {
	case *serverConn:
		info = c.info
	case *tls.Conn:
		state := c.ConnectionState()
		info = newConnInfo(c.RemoteAddr().String(), &state, s.trust)
	}
	if info == nil {
		info = newConnInfo(c.RemoteAddr().String(), nil, s.trust)
	}
	return context.WithValue(ctx, connInfoKey{}, info)
}

// h2Preface opens every HTTP/2 connection (RFC 9113, 3.4).
var h2Preface = []byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")

// serverConn is an accepted connection with what the fast path needs to
// know of it, and bytes already read from it that its reader gets first.
type serverConn struct {
	net.Conn
	info    *connInfo
	pending []byte
	peek    [24]byte
}

func (c *serverConn) Read(p []byte) (int, error) {
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// sniffPreface reads the first bytes of the connection, no more than the
// HTTP/2 preface, and reports whether they are that preface. The bytes
// are read again by whoever serves the connection. Once stopped is closed
// it fails: its deadline would otherwise replace the one stop set.
func (c *serverConn) sniffPreface(timeout time.Duration, stopped <-chan struct{}) (bool, error) {
	_ = c.SetReadDeadline(time.Now().Add(timeout))
	defer func() { _ = c.SetReadDeadline(time.Time{}) }()
	select {
	case <-stopped:
		return false, net.ErrClosed
	default:
	}
	got := 0
	for got < len(h2Preface) {
		n, err := c.Conn.Read(c.peek[got:])
		got += n
		c.pending = c.peek[:got]
		if !bytes.HasPrefix(h2Preface, c.pending) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
	}
	return true, nil
}

// connQueue is a net.Listener whose connections are pushed by the
// dispatcher.
type connQueue struct {
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
}

func newConnQueue() *connQueue {
	return &connQueue{ch: make(chan net.Conn), done: make(chan struct{})}
}

func (q *connQueue) push(c net.Conn) {
	select {
	case q.ch <- c:
	case <-q.done:
		_ = c.Close()
	}
}

func (q *connQueue) Accept() (net.Conn, error) {
	select {
	case c := <-q.ch:
		return c, nil
	case <-q.done:
		return nil, net.ErrClosed
	}
}

func (q *connQueue) Close() error {
	q.once.Do(func() { close(q.done) })
	return nil
}

func (q *connQueue) Addr() net.Addr { return queueAddr{} }

type queueAddr struct{}

func (queueAddr) Network() string { return "pipit" }
func (queueAddr) String() string  { return "dispatcher" }

// fastLogger sends fasthttp's messages (mostly clients that went away) to
// the debug log.
type fastLogger struct{ log *slog.Logger }

func (l fastLogger) Printf(format string, args ...any) {
	if l.log.Enabled(context.Background(), slog.LevelDebug) {
		l.log.Debug(fmt.Sprintf(format, args...))
	}
}
