package proxy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/pipit-dev/pipit/internal/traffic"
)

// The fast path serves plain HTTP/1.x requests on fasthttp's server and
// forwards them over pooled HTTP/1.1 connections of its own: no
// per-request goroutines, header maps or copies of small bodies. It makes
// the same decisions as ServeHTTP (the one routing function, ejection,
// retries, accounting, the version header); protocol upgrades and
// HTTP/2 go to ServeHTTP instead (see Server).

// fastHandler is implemented by the handlers that have a fast path: Proxy
// and Mux.
type fastHandler interface {
	http.Handler
	// serveFast answers ctx and returns true, or returns false without
	// touching ctx when the request needs net/http.
	serveFast(ctx *fasthttp.RequestCtx) bool
}

// maxBufferedBody is the largest response body read whole before it is
// written to the client; larger ones, bodies of unknown length and event
// streams are streamed.
const maxBufferedBody = 64 << 10

// serveFast implements fastHandler.
func (p *Proxy) serveFast(ctx *fasthttp.RequestCtx) bool {
	h := &ctx.Request.Header
	if h.ConnectionUpgrade() || h.IsConnect() {
		return false
	}
	info := connInfoOf(ctx)
	t := p.table.Load()
	v := newRequestView(ctx, info)
	b, d := t.choose(&v.r)
	if d.Mirror {
		if ctx.Request.IsBodyStream() {
			p.mirror.skipStreamed(&v.r)
		} else {
			p.mirror.sendBuffered(&v.r, ctx.Request.Body(), t.canary)
		}
	}
	v.release()
	if b.unready() {
		p.answerUnreadyFast(ctx, b)
		return true
	}
	p.forwardFast(ctx, b, info, d.SetCookie)
	return true
}

// forwardFast sends ctx's request to b and puts the answer in ctx.Response,
// with setCookie (the routing decision's sticky cookie) when not empty.
func (p *Proxy) forwardFast(ctx *fasthttp.RequestCtx, b *backend, info *connInfo, setCookie string) {
	req := &ctx.Request
	clientClose := req.Header.ConnectionClose()
	prepareUpstreamRequest(&req.Header, info)
	// See hasNoBodySemantics: such a request's connection is not reused.
	closeUpstream := hasNoBodySemantics(req.Header.Method()) && (req.IsBodyStream() || len(req.Body()) > 0)
	if closeUpstream {
		req.Header.SetConnectionClose()
	}
	ep, c, err := p.sendFast(req, &ctx.Response, b.up.state)
	if clientClose {
		req.Header.SetConnectionClose()
	} else {
		req.Header.ResetConnectionClose()
	}
	if err != nil {
		if status := clientFaultStatus(err); status != 0 {
			answerClientFault(ctx, status, err.Error())
		} else {
			p.answerFastError(ctx, b, err)
		}
		return
	}
	p.relayFast(ctx, b, upstreamResponse{ep: ep, c: c, close: closeUpstream}, setCookie)
}

// sendFast sends req to one of st's endpoints and reads the head of its
// answer into resp, trying again as mayRetry allows, and on a fresh
// connection when a kept-alive one turns out closed by the upstream. It
// returns the endpoint and the connection that answered.
func (p *Proxy) sendFast(req *fasthttp.Request, resp *fasthttp.Response, st *upstreamState) (*endpoint, *upConn, error) {
	// A streamed body cannot be sent twice; see settleBody.
	streamed := req.IsBodyStream()
	// The client's target is kept when it can be sent as it is, the
	// common case; otherwise each attempt builds the endpoint's.
	var target []byte
	if uri := req.Header.RequestURI(); st.rewrite || (len(uri) > 0 && uri[0] != '/' && uri[0] != '*') {
		target = bytes.Clone(uri)
	}
	// fasthttp would write the target again from its parsed and
	// normalised form, and the Host from it: the upstream gets the
	// client's target byte for byte instead, and the endpoint's host.
	req.UseHostHeader = true
	if target == nil {
		req.SetRequestURIBytes(req.Header.RequestURI())
	}
	var first uint32
	for attempt, stale := 0, 0; ; attempt++ {
		ep := st.pick(&first, attempt-stale)
		req.Header.SetHost(ep.host)
		if target != nil {
			req.SetRequestURIBytes(ep.targetFor(target))
		}
		c, err := ep.roundTrip(req, resp, p.transportCfg.headerTimeout)
		if err == nil {
			return ep, c, nil
		}
		var se *errStale
		if errors.As(err, &se) && stale < maxStaleRetries && !streamed && (se.nothingWritten || isIdempotent(req.Header.Method())) {
			// The upstream had closed this kept-alive connection, and
			// likely its other idle ones: start afresh on a new one.
			ep.pool.closeIdle()
			stale++
			continue
		}
		if !mayRetry(p.retries, attempt-stale, req.Header.Method(), !streamed, err) {
			return nil, nil, err
		}
	}
}

// upstreamResponse is where the head of an upstream's answer was read.
type upstreamResponse struct {
	ep *endpoint
	c  *upConn
	// close: the connection is not to be reused after this answer.
	close bool
}

// relayFast completes ctx.Response, whose head up has read, for the
// client: the connection's headers go, the version header and setCookie
// are added, and the body is read whole, or streamed when it is long or
// of unknown length. The request is accounted for once its body is over.
func (p *Proxy) relayFast(ctx *fasthttp.RequestCtx, b *backend, up upstreamResponse, setCookie string) {
	resp := &ctx.Response
	upClose := resp.Header.ConnectionClose() || up.close
	resp.Header.ResetConnectionClose()
	stripResponseHopByHop(&resp.Header)
	p.version.setFast(&resp.Header, b)
	if setCookie != "" {
		resp.Header.Add("Set-Cookie", setCookie)
	}
	code := resp.Header.StatusCode()
	cl := resp.Header.ContentLength()
	switch {
	case ctx.Request.Header.IsHead() || code == http.StatusNoContent || code == http.StatusNotModified:
		p.release(up.ep, up.c, upClose)
	case cl >= 0 && cl <= maxBufferedBody && !isEventStream(resp.Header.ContentType()):
		if err := resp.ReadBody(up.c.br, 0); err != nil {
			up.c.Close()
			resp.Reset()
			p.answerFastError(ctx, b, fmt.Errorf("reading the response body: %w", err))
			return
		}
		p.release(up.ep, up.c, upClose)
	default:
		p.streamFast(ctx, b, up, code, cl, !upClose && cl != -2)
		return // the stream accounts for the request when it ends
	}
	p.account(b, traffic.ClassOf(code), time.Since(ctx.Time()), "")
}

// streamFast streams the body of up's answer to the client, as fasthttp
// writes it: cl is its Content-Length, -1 for chunked, -2 for until the
// upstream closes; keep says the connection may be reused after it.
func (p *Proxy) streamFast(ctx *fasthttp.RequestCtx, b *backend, up upstreamResponse, code, cl int, keep bool) {
	c := up.c
	// Event streams and long bodies are not bounded in time.
	_ = c.SetReadDeadline(time.Time{})
	s := &streamBody{p: p, b: b, ep: up.ep, c: c, header: &ctx.Response.Header, start: ctx.Time(), code: code, keep: keep}
	switch cl {
	case -1:
		s.r = httputil.NewChunkedReader(c.br)
		s.chunked = true
	case -2:
		s.r = c.br // until the upstream closes the connection
	default:
		s.r = io.LimitReader(c.br, int64(cl))
	}
	if cl < 0 {
		cl = -1 // the client gets the body chunked, each piece flushed
	}
	ctx.Response.SetBodyStream(s, cl)
}

// release returns a connection whose response was read to its end, or
// closes it when the upstream asked to.
func (p *Proxy) release(ep *endpoint, c *upConn, closeIt bool) {
	if closeIt {
		c.Close()
		return
	}
	ep.pool.put(c)
}

// answerFastError answers when the upstream gave no usable answer
// (failedUpstream), and counts a transport error.
func (p *Proxy) answerFastError(ctx *fasthttp.RequestCtx, b *backend, err error) {
	p.writeFast(ctx, b, p.failedUpstream(b, err))
	p.account(b, traffic.ClassError, time.Since(ctx.Time()), err.Error())
}

// targetFor is the request target sent to ep for the client's target: in
// origin form, under the endpoint URL's path and with its query first, as
// httputil's ProxyRequest.SetURL does.
func (ep *endpoint) targetFor(client []byte) []byte {
	path, query := splitRequestURI(client)
	if len(path) == 0 {
		path = []byte("/")
	}
	base := ep.url.EscapedPath()
	out := make([]byte, 0, len(base)+len(path)+len(ep.url.RawQuery)+len(query)+2)
	switch {
	case base == "" || base == "/":
		out = append(out, path...)
	case strings.HasSuffix(base, "/") && path[0] == '/':
		out = append(append(out, base...), path[1:]...)
	case !strings.HasSuffix(base, "/") && path[0] != '/':
		out = append(append(append(out, base...), '/'), path...)
	default:
		out = append(append(out, base...), path...)
	}
	switch {
	case ep.url.RawQuery != "" && len(query) > 0:
		out = append(append(append(append(out, '?'), ep.url.RawQuery...), '&'), query...)
	case ep.url.RawQuery != "":
		out = append(append(out, '?'), ep.url.RawQuery...)
	case len(query) > 0:
		out = append(append(out, '?'), query...)
	}
	return out
}

// maxStaleRetries bounds the retries of requests that met a kept-alive
// connection the upstream had closed.
const maxStaleRetries = 2

// errStale is a failure on a reused connection before any byte of the
// answer: the upstream had closed it while it was idle.
type errStale struct {
	err error
	// nothingWritten: the request could not even be sent, so the
	// upstream cannot have seen it.
	nothingWritten bool
}

func (e *errStale) Error() string {
	return "kept-alive connection closed by the upstream: " + e.err.Error()
}
func (e *errStale) Unwrap() error { return e.err }

// roundTrip sends req on a connection to ep and reads the head of the
// final answer (1xx interim answers are dropped) into resp.
func (ep *endpoint) roundTrip(req *fasthttp.Request, resp *fasthttp.Response, timeout time.Duration) (*upConn, error) {
	c, err := ep.pool.get()
	if err != nil {
		return nil, err
	}
	// The answer's head must come within timeout. A request body larger
	// than the socket buffers could block the write as well.
	deadline := time.Now().Add(timeout)
	if req.IsBodyStream() || len(req.Body()) > upstreamBufferSize {
		_ = c.SetDeadline(deadline)
	} else {
		_ = c.SetReadDeadline(deadline)
	}
	err = req.Write(c.bw)
	if err == nil {
		err = c.bw.Flush()
	}
	if err != nil {
		c.Close()
		if clientFaultStatus(err) != 0 {
			return nil, err
		}
		if c.reused {
			return nil, &errStale{err: err, nothingWritten: true}
		}
		return nil, err
	}
	for {
		if err := resp.Header.Read(c.br); err != nil {
			c.Close()
			if c.reused && errors.Is(err, io.EOF) {
				return nil, &errStale{err: err}
			}
			if errors.Is(err, fasthttp.ErrTimeout) {
				return nil, fmt.Errorf("no answer from %s within %s: %w", ep.host, timeout, errTimeout)
			}
			return nil, err
		}
		if code := resp.Header.StatusCode(); code >= 200 || code == http.StatusSwitchingProtocols {
			break
		}
	}
	if resp.Header.StatusCode() == http.StatusSwitchingProtocols {
		// Only upgrade requests may be switched, and those go to net/http.
		c.Close()
		return nil, errors.New("the upstream switched protocols on a request that did not ask to")
	}
	return c, nil
}

// errTimeout is the timeout error of the fast path; isTimeout knows it.
var errTimeout = timeoutError{}

type timeoutError struct{}

func (timeoutError) Error() string   { return "timeout" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }

// streamBody streams a response body from the upstream to the client.
// fasthttp writes a body of unknown length chunk by chunk, flushing each
// one, so event streams reach the client as they are produced, and then
// the trailers it finds in the response header.
type streamBody struct {
	p       *Proxy
	b       *backend
	ep      *endpoint
	c       *upConn
	header  *fasthttp.ResponseHeader // the client's: a chunked body's trailers go there
	r       io.Reader
	chunked bool
	keep    bool // the connection may be reused once the body is read
	start   time.Time
	code    int
	eof     bool
	readErr error
	// trailerErr is set when the upstream's trailer section was bad: its
	// trailers are dropped and the connection is not reused.
	trailerErr error
}

func (s *streamBody) Read(buf []byte) (int, error) {
	n, err := s.r.Read(buf)
	switch {
	case err == io.EOF:
		if s.chunked && !s.eof {
			// The trailer section follows the last chunk; it is read
			// once, now, before fasthttp writes the client's.
			s.trailerErr = s.header.ReadTrailer(s.c.br)
		}
		s.eof = true
	case err != nil:
		s.readErr = err
	}
	return n, err
}

// CloseWithError is called by fasthttp once the body is written or the
// writing failed; it settles the connection and accounts for the request.
func (s *streamBody) CloseWithError(werr error) error {
	keep := s.keep && s.eof && werr == nil && s.trailerErr == nil
	if keep {
		s.ep.pool.put(s.c)
	} else {
		s.c.Close()
	}
	switch {
	case s.readErr != nil:
		s.p.account(s.b, traffic.ClassError, time.Since(s.start), "the response broke off: "+s.readErr.Error())
	case werr != nil && !s.eof:
		// The client went away: that says nothing about the upstream.
	default:
		s.p.account(s.b, traffic.ClassOf(s.code), time.Since(s.start), "")
	}
	return nil
}

func isEventStream(contentType []byte) bool {
	return len(contentType) >= 17 && bytes.EqualFold(contentType[:17], []byte("text/event-stream"))
}
