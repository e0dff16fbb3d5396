package proxy

import (
	"bytes"
	"net/http"
	"net/netip"
	"strings"

	"github.com/valyala/fasthttp"
)

// hopHeaders are the hop-by-hop headers (RFC 9110, 7.6.1, and the
// obsolete ones proxies still meet). They describe one connection, so the
// proxy removes them in both directions, with any header that Connection
// names. Transfer-Encoding is left to the HTTP library, which re-frames
// every body.
var hopHeaders = [...]string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "Te", "Trailer", "Upgrade"}

func isHopHeader(k []byte) bool {
	switch len(k) {
	case 2, 7, 10, 16, 18, 19: // the lengths of hopHeaders' names
		for _, h := range hopHeaders {
			if len(k) == len(h) && bytes.EqualFold(k, []byte(h)) {
				return true
			}
		}
	}
	return false
}

// stripRequestHopByHop removes the hop-by-hop headers from a request.
// Most requests have none, so one pass looks before anything is deleted;
// the loop is written out for each header type so that it allocates
// nothing.
func stripRequestHopByHop(h *fasthttp.RequestHeader) {
	for k := range h.All() {
		if isHopHeader(k) {
			deleteHopHeaders(h)
			return
		}
	}
}

// stripResponseHopByHop is stripRequestHopByHop for a response.
func stripResponseHopByHop(h *fasthttp.ResponseHeader) {
	for k := range h.All() {
		if isHopHeader(k) {
			deleteHopHeaders(h)
			return
		}
	}
}

// headerDeleter is the part of fasthttp's request and response headers
// that deleteHopHeaders needs.
type headerDeleter interface {
	PeekAll(key string) [][]byte
	Del(key string)
}

// deleteHopHeaders deletes the hop-by-hop headers and those that any
// Connection header lists from h.
func deleteHopHeaders(h headerDeleter) {
	// The names listed are copied out first: deleting headers reuses
	// the memory PeekAll's answer points into.
	var buf [256]byte
	listed := buf[:0]
	for _, v := range h.PeekAll("Connection") {
		listed = append(append(listed, v...), ',')
	}
	for len(listed) > 0 {
		var name []byte
		name, listed, _ = bytes.Cut(listed, []byte(","))
		if name = bytes.TrimSpace(name); len(name) > 0 && !bytes.EqualFold(name, []byte("close")) {
			h.Del(string(name))
		}
	}
	for _, k := range hopHeaders {
		h.Del(k)
	}
}

// forwardingHeaders are the headers in which proxies describe the client
// and its request. Both paths remove the client's and write their own
// (prepareUpstreamRequest, setForwardedHeaders); X-Forwarded, which
// nothing writes any more, is removed as httputil.ReverseProxy does.
var forwardingHeaders = [...]string{"Forwarded", "X-Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto"}

// prepareUpstreamRequest turns a client's request into the one sent
// upstream: hop-by-hop headers go, and the forwarding headers are written
// for this hop, as setForwardedHeaders writes them on net/http's path:
// from a trusted peer its X-Forwarded-For and Forwarded are kept, as one
// header each, with the peer appended, and its X-Forwarded-Host and
// -Proto are kept; from any other peer they describe this hop alone.
func prepareUpstreamRequest(h *fasthttp.RequestHeader, info *connInfo) {
	// The values are worked out before anything is deleted: deleting
	// reuses the memory PeekAll's answers point into. And a forwarding
	// header that the peer lists in Connection is still addressed to
	// this proxy, as net/http's path reads it too.
	proto := info.scheme()
	host := h.Host()
	var buf [1024]byte
	b := appendXForwardedFor(buf[:0], info, h.PeekAll("X-Forwarded-For"))
	xff := len(b)
	b = appendForwarded(b, info, h.PeekAll("Forwarded"), host, proto)
	fwd := len(b)
	if v, ok := keptValue(info, h.PeekAll("X-Forwarded-Host")); ok {
		b = append(b, v...)
	} else {
		b = append(b, host...)
	}
	xfh := len(b)
	if v, ok := keptValue(info, h.PeekAll("X-Forwarded-Proto")); ok {
		b = append(b, v...)
	} else {
		b = append(b, proto...)
	}

	stripRequestHopByHop(h)
	// The client's Connection: close is for its own connection; the
	// caller restores it once the upstream has answered.
	h.ResetConnectionClose()
	// fasthttp has already answered 100-continue and read the body.
	h.Del("Expect")
	// The client's Content-Type, or none: never fasthttp's default.
	h.SetNoDefaultContentType(true)
	// Every copy goes: setting a header replaces only its first one.
	for _, k := range forwardingHeaders {
		h.Del(k)
	}
	h.SetBytesV("X-Forwarded-For", b[:xff])
	h.SetBytesV("Forwarded", b[xff:fwd])
	if xfh > fwd {
		h.SetBytesV("X-Forwarded-Host", b[fwd:xfh])
	}
	h.SetBytesV("X-Forwarded-Proto", b[xfh:])
}

// setForwardedHeaders is prepareUpstreamRequest for net/http's path: it
// writes out's forwarding headers for in, the client's request. out's
// hop-by-hop headers are gone already (httputil.ReverseProxy,
// copyRequest).
func setForwardedHeaders(out http.Header, in *http.Request) {
	info := requestConnInfo(in)
	proto := info.scheme()
	for _, k := range forwardingHeaders {
		delete(out, k)
	}
	out["X-Forwarded-For"] = []string{string(appendXForwardedFor(nil, info, in.Header["X-Forwarded-For"]))}
	out["Forwarded"] = []string{string(appendForwarded(nil, info, in.Header["Forwarded"], []byte(in.Host), proto))}
	host, ok := keptValue(info, in.Header["X-Forwarded-Host"])
	if !ok {
		host = in.Host
	}
	if host != "" {
		out["X-Forwarded-Host"] = []string{host}
	}
	if p, ok := keptValue(info, in.Header["X-Forwarded-Proto"]); ok {
		proto = p
	}
	out["X-Forwarded-Proto"] = []string{proto}
}

// appendXForwardedFor appends the X-Forwarded-For value sent upstream:
// from a trusted peer the list it sent, all its headers as one, then the
// peer; from any other peer, the peer alone. The type parameter lets
// both paths pass their own header values without copying them.
func appendXForwardedFor[S ~string | ~[]byte](dst []byte, info *connInfo, prior []S) []byte {
	if info.trusted {
		dst = appendList(dst, prior)
	}
	return append(dst, info.clientIP...)
}

// appendForwarded appends the Forwarded value sent upstream, kept or
// replaced as appendXForwardedFor's, ending with this hop's element.
func appendForwarded[S ~string | ~[]byte](dst []byte, info *connInfo, prior []S, host []byte, proto string) []byte {
	if info.trusted {
		dst = appendList(dst, prior)
	}
	return appendForwardedHost(append(dst, info.forwardedFor...), host, proto)
}

// appendList appends the values of a repeated header as one list, each
// trimmed and empty ones left out, followed by ", " when there was any.
func appendList[S ~string | ~[]byte](dst []byte, values []S) []byte {
	for _, v := range values {
		if v = trimOWS(v); len(v) > 0 {
			dst = append(append(dst, v...), ", "...)
		}
	}
	return dst
}

// keptValue is the value a trusted peer gave a forwarding header that
// names one thing (X-Forwarded-Host, X-Forwarded-Proto): its first that
// is not empty. ok is false from any other peer, or when it gave none:
// the header then describes this request.
func keptValue[S ~string | ~[]byte](info *connInfo, values []S) (v S, ok bool) {
	if !info.trusted {
		return v, false
	}
	for _, v := range values {
		if v = trimOWS(v); len(v) > 0 {
			return v, true
		}
	}
	return v, false
}

// appendForwardedFor appends the first pair of an RFC 7239
// forwarded-element, for=<client>, and appendForwardedHost the others:
// the whole element reads for=<client>;host=<host>;proto=<proto>. An IPv6
// client is quoted and bracketed, a client that is no IP address is
// "unknown", and a host that is not a token is quoted; a host with
// control characters is left out.
func appendForwardedFor(dst []byte, clientIP string) []byte {
	dst = append(dst, "for="...)
	switch ip, err := netip.ParseAddr(clientIP); {
	case err != nil:
		return append(dst, "unknown"...)
	case ip.Is4() || ip.Is4In6():
		return ip.Unmap().AppendTo(dst)
	default:
		dst = append(dst, `"[`...)
		dst = ip.AppendTo(dst)
		return append(dst, `]"`...)
	}
}

// appendForwardedHost appends the element's other pairs, host and proto
// (see appendForwardedFor).
func appendForwardedHost(dst, host []byte, proto string) []byte {
	if len(host) > 0 && !hasControl(host) {
		dst = append(dst, ";host="...)
		dst = appendTokenOrQuoted(dst, host)
	}
	dst = append(dst, ";proto="...)
	return append(dst, proto...)
}

func hasControl(b []byte) bool {
	for _, c := range b {
		if c < 0x20 || c == 0x7f {
			return true
		}
	}
	return false
}

// appendTokenOrQuoted appends v as an RFC 9110 token when it is one, and
// as a quoted-string otherwise.
func appendTokenOrQuoted(dst, v []byte) []byte {
	token := true
	for _, c := range v {
		if !isTokenChar(c) {
			token = false
			break
		}
	}
	if token {
		return append(dst, v...)
	}
	dst = append(dst, '"')
	for _, c := range v {
		if c == '"' || c == '\\' {
			dst = append(dst, '\\')
		}
		dst = append(dst, c)
	}
	return append(dst, '"')
}

func isTokenChar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}
