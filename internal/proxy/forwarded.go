package proxy

import (
	"bytes"
	"net"
	"net/http/httputil"
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
	Peek(key string) []byte
	Del(key string)
}

// deleteHopHeaders deletes the hop-by-hop headers and those Connection
// lists from h.
func deleteHopHeaders(h headerDeleter) {
	// The names listed in Connection are copied out first: deleting
	// headers reuses the memory Peek's answer points into.
	var buf [256]byte
	listed := append(buf[:0], h.Peek("Connection")...)
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

// prepareUpstreamRequest turns a client's request into the one sent
// upstream: hop-by-hop headers go, and the proxy adds itself to
// X-Forwarded-For and Forwarded and describes the client's request in
// X-Forwarded-Host and -Proto, as nginx and httputil.ProxyRequest do.
func prepareUpstreamRequest(h *fasthttp.RequestHeader, info *connInfo) {
	stripRequestHopByHop(h)
	// The client's Connection: close is for its own connection; the
	// caller restores it once the upstream has answered.
	h.ResetConnectionClose()
	// fasthttp has already answered 100-continue and read the body.
	h.Del("Expect")
	// The client's Content-Type, or none: never fasthttp's default.
	h.SetNoDefaultContentType(true)
	proto := "http"
	if info.tls != nil {
		proto = "https"
	}
	var buf [512]byte
	b := buf[:0]
	if prior := bytes.TrimSpace(h.Peek("X-Forwarded-For")); len(prior) > 0 {
		b = append(append(b, prior...), ", "...)
	}
	b = append(b, info.clientIP...)
	h.SetBytesV("X-Forwarded-For", b)

	b = b[:0]
	if prior := bytes.TrimSpace(h.Peek("Forwarded")); len(prior) > 0 {
		b = append(append(b, prior...), ", "...)
	}
	host := h.Host()
	b = appendForwardedHost(append(b, info.forwardedFor...), host, proto)
	h.SetBytesV("Forwarded", b)
	h.Set("X-Forwarded-Proto", proto)
	if len(host) > 0 {
		h.SetBytesV("X-Forwarded-Host", host)
	} else {
		h.Del("X-Forwarded-Host")
	}
}

// setForwardedHeaders is prepareUpstreamRequest for net/http's path;
// ReverseProxy has already removed the hop-by-hop headers and the
// client's X-Forwarded-* and Forwarded from pr.Out.
func setForwardedHeaders(pr *httputil.ProxyRequest) {
	// Keep the chain of proxies in front of this one and append the
	// client, as nginx's $proxy_add_x_forwarded_for does.
	pr.Out.Header["X-Forwarded-For"] = pr.In.Header["X-Forwarded-For"]
	pr.SetXForwarded()
	proto := "http"
	if pr.In.TLS != nil {
		proto = "https"
	}
	ip := pr.In.RemoteAddr
	if host, _, err := net.SplitHostPort(ip); err == nil {
		ip = host
	}
	var b []byte
	if prior := pr.In.Header.Values("Forwarded"); len(prior) > 0 {
		b = append(append(b, strings.Join(prior, ", ")...), ", "...)
	}
	pr.Out.Header.Set("Forwarded", string(appendForwardedElement(b, ip, []byte(pr.In.Host), proto)))
}

// appendForwardedElement appends one RFC 7239 forwarded-element to dst:
// for=<client>;host=<host>;proto=<proto>. An IPv6 client is quoted and
// bracketed, a client that is no IP address is "unknown", and a host that
// is not a token is quoted; a host with control characters is left out.
func appendForwardedElement(dst []byte, clientIP string, host []byte, proto string) []byte {
	return appendForwardedHost(appendForwardedFor(dst, clientIP), host, proto)
}

// appendForwardedFor appends the element's first pair, for=<client>.
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

// appendForwardedHost appends the element's other pairs, host and proto.
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
