package proxy

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/pipit-dev/pipit/internal/proxy/upstream"
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
	ans, err := b.up.replicas.Send(req, &ctx.Response, p.retries)
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
	p.relayFast(ctx, b, ans, closeUpstream, setCookie)
}

// relayFast completes ctx.Response, whose head ans has read, for the
// client: the connection's headers go, the version header and setCookie
// are added, and the body is read whole, or streamed when it is long or
// of unknown length. The upstream's connection is closed after it when
// the upstream says so or closeUpstream. The request is accounted for
// once its body is over.
func (p *Proxy) relayFast(ctx *fasthttp.RequestCtx, b *backend, ans upstream.Answer, closeUpstream bool, setCookie string) {
	resp := &ctx.Response
	upClose := resp.Header.ConnectionClose() || closeUpstream
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
		ans.Release(!upClose)
	case cl >= 0 && cl <= maxBufferedBody && !isEventStream(resp.Header.ContentType()):
		if err := resp.ReadBody(ans.Body(), 0); err != nil {
			ans.Close()
			resp.Reset()
			p.answerFastError(ctx, b, fmt.Errorf("reading the response body: %w", err))
			return
		}
		ans.Release(!upClose)
	default:
		p.streamFast(ctx, b, ans, code, cl, !upClose && cl != -2)
		return // the stream accounts for the request when it ends
	}
	p.account(b, traffic.ClassOf(code), time.Since(ctx.Time()), "")
}

// streamFast streams the body of ans to the client, as fasthttp writes
// it: cl is its Content-Length, -1 for chunked, -2 for until the upstream
// closes; keep says the connection may be reused after it.
func (p *Proxy) streamFast(ctx *fasthttp.RequestCtx, b *backend, ans upstream.Answer, code, cl int, keep bool) {
	// Event streams and long bodies are not bounded in time.
	ans.Unbounded()
	s := &streamBody{p: p, b: b, ans: ans, header: &ctx.Response.Header, start: ctx.Time(), code: code, keep: keep}
	switch cl {
	case -1:
		s.r = httputil.NewChunkedReader(ans.Body())
		s.chunked = true
	case -2:
		s.r = ans.Body() // until the upstream closes the connection
	default:
		s.r = io.LimitReader(ans.Body(), int64(cl))
	}
	if cl < 0 {
		cl = -1 // the client gets the body chunked, each piece flushed
	}
	ctx.Response.SetBodyStream(s, cl)
}

// answerFastError answers when the upstream gave no usable answer
// (failedUpstream), and counts a transport error.
func (p *Proxy) answerFastError(ctx *fasthttp.RequestCtx, b *backend, err error) {
	p.writeFast(ctx, b, p.failedUpstream(b, err))
	p.account(b, traffic.ClassError, time.Since(ctx.Time()), err.Error())
}

// streamBody streams a response body from the upstream to the client.
// fasthttp writes a body of unknown length chunk by chunk, flushing each
// one, so event streams reach the client as they are produced, and then
// the trailers it finds in the response header.
type streamBody struct {
	p       *Proxy
	b       *backend
	ans     upstream.Answer
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
			s.trailerErr = s.header.ReadTrailer(s.ans.Body())
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
	s.ans.Release(s.keep && s.eof && werr == nil && s.trailerErr == nil)
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
