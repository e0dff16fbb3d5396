package proxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"net/http"
	"net/netip"
	"net/textproto"
	"net/url"
	"sync"

	"github.com/valyala/fasthttp"

	"github.com/pipit-dev/pipit/internal/proxy/route"
)

// connInfo is what the proxy needs to know of a client connection,
// worked out once per connection instead of once per request. Both paths
// have it: the fast path from its serverConn, net/http from the
// connection's context (Server.connContext, requestConnInfo).
type connInfo struct {
	remoteAddr   string               // as net/http's Request.RemoteAddr
	clientIP     string               // the peer's address: the host part of remoteAddr
	forwardedFor []byte               // for=<clientIP>, as in the Forwarded header
	tls          *tls.ConnectionState // nil for plain HTTP
	// trust is the server's trusted proxies, and trusted says whether
	// the peer is one of them: then its forwarding headers are kept
	// and extended, and name the client (effectiveClientAddr).
	trust   trustedProxies
	trusted bool
	// request is an empty Request whose context holds this connInfo.
	// The fast path's views start as copies of it, since a Request's
	// context can be set only by copying one that has it, and so
	// requestConnInfo finds the connection of a view as of any request.
	request *http.Request
	// host is the Host of the connection's last request: a client
	// sends the same one on every request of a connection, so it is
	// made a string once. Only the connection's goroutine uses it.
	host string
	// closeAfterReplay is set when the fast path hands net/http a
	// connection whose request was framed ambiguously (Content-Length
	// and Transfer-Encoding both): net/http must close it after that
	// request's answer, as the fast path would (RFC 9112 6.1), and never
	// read what follows as requests of its own.
	closeAfterReplay bool
}

// hostString returns b as a string, the last one when it is the same.
func (c *connInfo) hostString(b []byte) string {
	if string(b) != c.host {
		c.host = string(b)
	}
	return c.host
}

// scheme is the scheme the client spoke to the proxy.
func (c *connInfo) scheme() string {
	if c.tls != nil {
		return "https"
	}
	return "http"
}

// newConnInfo works out the facts of a connection from the peer's
// address (as net.Conn.RemoteAddr gives it), its TLS state (nil for plain
// HTTP) and the proxies the server trusts.
func newConnInfo(remoteAddr string, state *tls.ConnectionState, trust trustedProxies) *connInfo {
	ip := route.ClientIP(remoteAddr)
	c := &connInfo{remoteAddr: remoteAddr, clientIP: ip, forwardedFor: appendForwardedFor(nil, ip), tls: state, trust: trust}
	if addr, err := netip.ParseAddr(ip); err == nil {
		c.trusted = trust.contains(addr)
	}
	c.request = (&http.Request{}).WithContext(context.WithValue(context.Background(), connInfoKey{}, c))
	return c
}

// connInfoOf returns the information of ctx's connection: the one the
// Server recorded, or one worked out now, trusting no proxy, for a
// connection it did not accept.
func connInfoOf(ctx *fasthttp.RequestCtx) *connInfo {
	if c, ok := ctx.Conn().(*serverConn); ok && c.info != nil {
		return c.info
	}
	return newConnInfo(ctx.RemoteAddr().String(), nil, nil)
}

// requestView presents a fast-path request as the *http.Request the
// routing function reads. Views are pooled and reused once the routing
// decision is made; header values are copies, never fasthttp's buffers,
// so a clone of the view (Request.Clone) may be kept.
type requestView struct {
	r    http.Request
	u    url.URL
	h    http.Header
	vals []string
}

var views = sync.Pool{New: func() any { return &requestView{h: make(http.Header, 8)} }}

func newRequestView(ctx *fasthttp.RequestCtx, info *connInfo) *requestView {
	v := views.Get().(*requestView)
	h := &ctx.Request.Header
	// The target is in normal form already (normalizeFastRequest): the
	// path is decoded as net/http decodes it, and RawPath keeps the
	// escapes that decoding loses (%2F), as net/http's URL does.
	path, query := splitRequestURI(h.RequestURI())
	v.u = url.URL{Path: pathString(path)}
	if bytes.IndexByte(path, '%') >= 0 {
		v.u.RawPath = string(path)
	}
	if len(query) > 0 {
		v.u.RawQuery = string(query)
	}
	clear(v.h)
	v.vals = v.vals[:0]
	for k, val := range h.All() {
		key := headerName(k)
		if key == "Host" {
			continue // net/http keeps it in Request.Host
		}
		v.vals = append(v.vals, string(val))
		if prev, ok := v.h[key]; ok {
			v.h[key] = append(prev, v.vals[len(v.vals)-1])
			continue
		}
		v.h[key] = v.vals[len(v.vals)-1 : len(v.vals) : len(v.vals)]
	}
	v.r = *info.request // for its context, which leads back to info
	v.r.Method = methodString(h.Method())
	v.r.URL = &v.u
	v.r.Proto, v.r.ProtoMajor, v.r.ProtoMinor = "HTTP/1.1", 1, 1
	v.r.Header = v.h
	v.r.Body = http.NoBody
	v.r.ContentLength = int64(max(h.ContentLength(), 0))
	v.r.Host = info.hostString(h.Host())
	v.r.RemoteAddr = info.remoteAddr
	v.r.TLS = info.tls
	if !h.IsHTTP11() {
		v.r.Proto, v.r.ProtoMinor = "HTTP/1.0", 0
	}
	return v
}

func (v *requestView) release() {
	v.r = http.Request{}
	views.Put(v)
}

// splitRequestURI splits an origin-form request target, as the fast
// path has it once normalised, into its path and query.
func splitRequestURI(uri []byte) (path, query []byte) {
	path, query, _ = bytes.Cut(uri, []byte("?"))
	return path, query
}

// pathString is the decoded path, as in net/http's URL.Path.
func pathString(p []byte) string {
	switch {
	case len(p) == 0 || (len(p) == 1 && p[0] == '/'):
		return "/"
	case bytes.IndexByte(p, '%') >= 0:
		if s, err := url.PathUnescape(string(p)); err == nil {
			return s
		}
	}
	return string(p)
}

// methodString returns the method without allocating for the common ones.
func methodString(m []byte) string {
	for _, s := range knownMethods {
		if string(m) == s {
			return s
		}
	}
	return string(m)
}

var knownMethods = [...]string{
	http.MethodGet, http.MethodPost, http.MethodHead, http.MethodPut, http.MethodDelete,
	http.MethodOptions, http.MethodPatch, http.MethodConnect, http.MethodTrace,
}

// headerName returns the canonical form of a header name; common names
// come from a table instead of a new string.
func headerName(k []byte) string {
	if s, ok := commonHeaders[string(k)]; ok {
		return s
	}
	return textproto.CanonicalMIMEHeaderKey(string(k))
}

var commonHeaders = func() map[string]string {
	names := []string{
		"Accept", "Accept-Encoding", "Accept-Language", "Authorization", "Cache-Control",
		"Connection", "Content-Length", "Content-Type", "Cookie", "Host", "If-Modified-Since",
		"If-None-Match", "Origin", "Pragma", "Referer", "User-Agent", "X-Forwarded-For",
		"X-Forwarded-Host", "X-Forwarded-Proto", "Forwarded", "X-Request-Id", "X-Real-Ip",
		"X-User-Id", "X-User-Email", "X-User-Segment", "Canary", "Traceparent", "Tracestate",
		"Sec-Ch-Ua", "Sec-Ch-Ua-Mobile", "Sec-Ch-Ua-Platform", "Sec-Fetch-Dest", "Sec-Fetch-Mode",
		"Sec-Fetch-Site", "Sec-Fetch-User", "Upgrade-Insecure-Requests", "Dnt", "Te",
	}
	m := make(map[string]string, 2*len(names))
	for _, n := range names {
		m[n] = n
		m[textproto.CanonicalMIMEHeaderKey(n)] = textproto.CanonicalMIMEHeaderKey(n)
	}
	return m
}()
