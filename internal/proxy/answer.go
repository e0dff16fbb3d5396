package proxy

import (
	"net/http"

	"github.com/valyala/fasthttp"
)

// The decisions both forwarding paths make about what a client is told
// besides the upstream's own answer: the version header, and the proxy's
// own answer when the upstream gives none. Each is made here once; the
// net/http path (ServeHTTP) and the fast path (serveFast) only write it
// in their own types.

// versionHeader is Config.VersionHeader: the response header naming the
// version that answered, set on every response, the proxy's own included.
type versionHeader struct {
	name string // as configured; empty sets none
	key  []byte // name in canonical form, for the fast path
}

// setStd sets the header naming b on a net/http response's header.
func (v versionHeader) setStd(h http.Header, b *backend) {
	if v.name != "" {
		h.Set(v.name, b.up.Version)
	}
}

// setFast sets the header naming b on a fast-path response's header,
// without allocating.
func (v versionHeader) setFast(h *fasthttp.ResponseHeader, b *backend) {
	if v.name != "" {
		h.SetCanonical(v.key, b.version)
	}
}

// ownAnswer is an answer the proxy gives itself in the name of a version
// that could not answer.
type ownAnswer struct {
	status int
	// body is the text of the answer without its final newline; empty
	// for none.
	body string
	// retryAfter is the Retry-After value; empty for none.
	retryAfter string
}

// failedUpstream is the answer to a request b gave no usable answer to:
// 504 when err is a timeout, 502 otherwise, with no body. The failure is
// logged at debug level.
func (p *Proxy) failedUpstream(b *backend, err error) ownAnswer {
	code := http.StatusBadGateway
	if isTimeout(err) {
		code = http.StatusGatewayTimeout
	}
	p.log.Debug("upstream error", "role", b.role, "version", b.up.Version, "status", code, "err", err)
	return ownAnswer{status: code}
}

// unavailableRetry is the Retry-After of an answer of an unready stable:
// replicas are probed about that often.
const unavailableRetry = "1"

// unreadyUpstream is the answer to a request for b, a stable with no
// ready replica: 503, to be tried again in a second.
func unreadyUpstream(b *backend) ownAnswer {
	return ownAnswer{
		status:     http.StatusServiceUnavailable,
		body:       "service unavailable: " + errNoReplica.Error() + " of version " + b.up.Version,
		retryAfter: unavailableRetry,
	}
}

// writeStd writes a on the net/http path, naming b's version.
func (p *Proxy) writeStd(w http.ResponseWriter, b *backend, a ownAnswer) {
	p.version.setStd(w.Header(), b)
	if a.retryAfter != "" {
		w.Header().Set("Retry-After", a.retryAfter)
	}
	if a.body == "" {
		w.WriteHeader(a.status)
		return
	}
	http.Error(w, a.body, a.status)
}

// writeFast writes a on the fast path, in place of anything ctx's
// response held, naming b's version.
func (p *Proxy) writeFast(ctx *fasthttp.RequestCtx, b *backend, a ownAnswer) {
	ctx.Response.Reset()
	ctx.Response.SetStatusCode(a.status)
	p.version.setFast(&ctx.Response.Header, b)
	if a.retryAfter != "" {
		ctx.Response.Header.Set("Retry-After", a.retryAfter)
	}
	if a.body != "" {
		ctx.Response.SetBodyString(a.body + "\n")
	}
}
