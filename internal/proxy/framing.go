package proxy

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"sync"

	"github.com/valyala/fasthttp"
	"golang.org/x/net/http/httpguts"
)

// Request framing on the fast path. fasthttp parses each HTTP/1 request;
// before one is forwarded its head is held to the rules of Go's net/http
// server, and to stricter ones wherever a lenient reading would let two
// parsers disagree on where a request ends (request smuggling, RFC 9112
// 11.2). A refused request is answered and its connection closed: once
// the framing is in doubt, nothing more on that connection can be trusted.
// The upstream never sees the client's framing: every forwarded body is
// framed again by the proxy (Content-Length, or chunked for a stream).

// headFault is why a request head is refused, and the status it is
// answered with.
type headFault struct {
	status int
	reason string
}

// checkRequestHead holds the head of a parsed request to the rules above.
// ambiguous reports a request carrying both Content-Length and
// Transfer-Encoding: it is read as chunked, as RFC 9112 6.3 says, and its
// connection closed after the answer, as 6.1 requires.
func checkRequestHead(h *fasthttp.RequestHeader) (ambiguous bool, fault *headFault) {
	switch proto := h.Protocol(); {
	case string(proto) == "HTTP/1.1", string(proto) == "HTTP/1.0":
	default:
		return false, &headFault{http.StatusHTTPVersionNotSupported, "unsupported protocol version"}
	}
	if !isToken(h.Method()) {
		return false, &headFault{http.StatusBadRequest, "invalid method"}
	}
	if !httpguts.ValidHostHeader(string(h.Host())) {
		return false, &headFault{http.StatusBadRequest, "invalid Host header"}
	}
	var lengths, encodings int
	expectation := false // an Expect header other than 100-continue
	raw := h.RawHeaders()
	for len(raw) > 0 {
		end := bytes.IndexByte(raw, '\n')
		if end < 1 || raw[end-1] != '\r' {
			return false, &headFault{http.StatusBadRequest, "header line not ended by CRLF"}
		}
		line := raw[:end-1]
		raw = raw[end+1:]
		if len(line) == 0 {
			break // the blank line that ends the head
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		switch {
		case line[0] == ' ' || line[0] == '\t':
			return false, &headFault{http.StatusBadRequest, "folded header line (obs-fold)"}
		case !ok || !isToken(name):
			return false, &headFault{http.StatusBadRequest, "invalid header name"}
		case !validFieldValue(value):
			return false, &headFault{http.StatusBadRequest, "invalid header value"}
		case bytes.EqualFold(name, []byte("Content-Length")):
			lengths++
		case bytes.EqualFold(name, []byte("Expect")):
			expectation = expectation || !httpguts.HeaderValuesContainsToken([]string{string(value)}, "100-continue")
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			encodings++
			if !bytes.EqualFold(bytes.Trim(value, " \t"), []byte("chunked")) {
				return false, &headFault{http.StatusNotImplemented, "unsupported transfer encoding"}
			}
		}
	}
	switch {
	case encodings > 1:
		return false, &headFault{http.StatusNotImplemented, "more than one Transfer-Encoding header"}
	case lengths > 1:
		return false, &headFault{http.StatusBadRequest, "more than one Content-Length header"}
	case encodings > 0 && !h.IsHTTP11():
		return false, &headFault{http.StatusBadRequest, "Transfer-Encoding in an HTTP/1.0 request"}
	case expectation:
		// fasthttp would ignore it; RFC 9110 10.1.1 and net/http refuse.
		return false, &headFault{http.StatusExpectationFailed, "unsupported expectation"}
	}
	return lengths > 0 && encodings > 0, nil
}

// validFieldValue is httpguts.ValidHeaderFieldValue on bytes, without
// making a string of every value: no control byte but horizontal tab.
func validFieldValue(v []byte) bool {
	for _, c := range v {
		if (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

func isToken(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if !isTokenChar(c) {
			return false
		}
	}
	return true
}

// maxBufferedRequestBody is the largest request body read whole before it
// is forwarded, so that it can be sent again (retries) and copied
// (mirroring). Larger bodies are streamed from the client to the upstream
// with a buffer's worth of memory: neither retried nor mirrored. No buffer
// is ever sized from a length the client declared.
const maxBufferedRequestBody = 64 << 10

// errBodyTooLarge is a streamed body that ran past the server's limit.
var errBodyTooLarge = errors.New("request body too large")

// settleBody decides how the body of ctx's request goes upstream, before
// any handler sees it: read whole when it is at most
// maxBufferedRequestBody, streamed otherwise. fasthttp (with
// StreamRequestBody) has read at most a few kilobytes of it so far. It
// returns the buffer holding the body, to be given back with
// releaseBodyBuffer once the request is answered, and an error for a body
// over limit bytes or one the client failed to send.
func settleBody(ctx *fasthttp.RequestCtx, limit int64) (*bodyBuffer, error) {
	req := &ctx.Request
	stream := req.BodyStream()
	if stream == nil {
		return nil, nil
	}
	cl := req.Header.ContentLength()
	if int64(cl) > limit {
		return nil, errBodyTooLarge
	}
	if cl > maxBufferedRequestBody {
		// fasthttp's stream stops at Content-Length; the wrapper tells
		// the client's failures from the upstream's.
		req.SetBodyStream(&clientBody{r: stream, left: limit, header: &req.Header}, cl)
		return nil, nil
	}
	most := int(min(maxBufferedRequestBody, limit)) // what may be buffered
	buf := bodyBuffers.Get().(*bodyBuffer)
	n, err := buf.fill(stream, most+1)
	if err == nil && n <= most && hasTrailers(&req.Header) {
		err = errRequestTrailers
	}
	switch {
	case err != nil:
		releaseBodyBuffer(buf)
		return nil, &clientBodyError{err}
	case int64(n) > limit:
		releaseBodyBuffer(buf)
		return nil, errBodyTooLarge
	case n <= most && !req.Header.IsGet() && !req.Header.IsHead():
		req.SetBodyRaw(buf.b) // written with a Content-Length of its own
		return buf, nil
	case n <= most:
		// fasthttp writes no body of its own for these methods; a
		// stream it does write, with the length given.
		req.SetBodyStream(bytes.NewReader(buf.b), n)
		return buf, nil
	}
	// A chunked body longer than the buffer: what was read goes first,
	// then the rest as it comes, framed chunked again, within limit.
	rest := &clientBody{r: stream, left: limit - int64(n), header: &req.Header}
	req.SetBodyStream(io.MultiReader(bytes.NewReader(buf.b), rest), -1)
	return buf, nil
}

// bodyBuffer holds a small request body between its reading and its
// answer.
type bodyBuffer struct{ b []byte }

var bodyBuffers = sync.Pool{New: func() any { return &bodyBuffer{b: make([]byte, 0, 4<<10)} }}

// fill reads r to its end or until limit bytes, whichever comes first.
func (buf *bodyBuffer) fill(r io.Reader, limit int) (int, error) {
	buf.b = buf.b[:0]
	for len(buf.b) < limit {
		if len(buf.b) == cap(buf.b) {
			buf.b = append(buf.b, 0)[:len(buf.b)]
		}
		n, err := r.Read(buf.b[len(buf.b):min(cap(buf.b), limit)])
		buf.b = buf.b[:len(buf.b)+n]
		if err == io.EOF {
			return len(buf.b), nil
		}
		if err != nil {
			return len(buf.b), err
		}
	}
	return len(buf.b), nil
}

func releaseBodyBuffer(buf *bodyBuffer) {
	if buf == nil {
		return
	}
	if cap(buf.b) > maxBufferedRequestBody+1 {
		buf.b = make([]byte, 0, 4<<10)
	}
	bodyBuffers.Put(buf)
}

// clientBody is the rest of a streamed request body, bounded by the
// server's limit.
type clientBody struct {
	r      io.Reader
	left   int64
	header *fasthttp.RequestHeader // where fasthttp puts the trailers it reads
}

func (c *clientBody) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.left -= int64(n)
	switch {
	case c.left < 0:
		return n, errBodyTooLarge
	case err == io.EOF && hasTrailers(c.header):
		return n, &clientBodyError{errRequestTrailers}
	case err != nil && err != io.EOF:
		return n, &clientBodyError{err}
	}
	return n, err
}

// errRequestTrailers refuses a request with trailer fields. fasthttp
// would pass them on as header fields, where net/http passes on only
// those announced; HTTP/1.1 clients hardly ever send them (gRPC's come
// over HTTP/2, which net/http serves), so the fast path takes none.
var errRequestTrailers = errors.New("trailer fields in a request are not accepted")

// hasTrailers reports whether a request announced or sent trailer fields.
func hasTrailers(h *fasthttp.RequestHeader) bool {
	for range h.Trailers() {
		return true
	}
	return false
}

// clientBodyError is a failure to read the client's body: the client's
// doing, never held against the upstream.
type clientBodyError struct{ err error }

func (e *clientBodyError) Error() string { return "reading the request body: " + e.err.Error() }
func (e *clientBodyError) Unwrap() error { return e.err }

// answerClientFault answers a request the proxy will not forward because
// of the client, and closes the connection: after a framing fault or a
// body cut short, what follows on it cannot be read safely.
func answerClientFault(ctx *fasthttp.RequestCtx, status int, reason string) {
	ctx.Response.Reset()
	ctx.Error(reason, status)
	ctx.SetConnectionClose()
}

// clientFaultStatus is the status answering err, a failure caused by the
// client's request body; 0 when err is not one.
func clientFaultStatus(err error) int {
	var ce *clientBodyError
	switch {
	case errors.Is(err, errBodyTooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.As(err, &ce) && isTimeout(ce.err):
		return http.StatusRequestTimeout
	case errors.As(err, &ce):
		return http.StatusBadRequest
	}
	return 0
}

// hasNoBodySemantics reports whether a method's requests define no
// meaning for a body (RFC 9110, 9.3). An upstream may well not read such a
// body, and then take it for the next request on the connection: a
// request smuggled past the proxy, whose answer the next user would get.
// Such a request is forwarded with its body, as Go's ReverseProxy does,
// but its upstream connection is closed after it, as is safe.
func hasNoBodySemantics(method []byte) bool {
	switch string(method) {
	case http.MethodGet, http.MethodHead, http.MethodDelete, http.MethodOptions, http.MethodTrace, http.MethodConnect:
		return true
	}
	return false
}
