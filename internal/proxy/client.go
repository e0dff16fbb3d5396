package proxy

import (
	"fmt"
	"net/http"
	"net/netip"

	"github.com/pipit-dev/pipit/internal/proxy/route"
)

// trustedProxies are ServerConfig.TrustedProxies, checked and masked,
// with IPv4-mapped IPv6 prefixes in IPv4 form, as peers are compared in
// it (an IPv4 client is an IPv4 address whichever socket it came on).
type trustedProxies []netip.Prefix

func newTrustedProxies(prefixes []netip.Prefix) (trustedProxies, error) {
	if len(prefixes) == 0 {
		return nil, nil
	}
	t := make(trustedProxies, 0, len(prefixes))
	for _, p := range prefixes {
		if !p.IsValid() {
			return nil, fmt.Errorf("trusted proxy %q is not an address prefix", p)
		}
		if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
		}
		t = append(t, p.Masked())
	}
	return t, nil
}

// contains reports whether a is the address of a trusted proxy.
func (t trustedProxies) contains(a netip.Addr) bool {
	a = a.Unmap().WithZone("")
	for _, p := range t {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

type connInfoKey struct{}

// requestConnInfo returns the facts of the connection r came on: the
// Server's, from r's context, on either path; for a request the Server
// did not accept (a Proxy used as a plain http.Handler), ones worked out
// from r itself, trusting no proxy.
func requestConnInfo(r *http.Request) *connInfo {
	if c, ok := r.Context().Value(connInfoKey{}).(*connInfo); ok {
		return c
	}
	return newConnInfo(r.RemoteAddr, r.TLS, nil)
}

// clientAddress is the effective client address of r (see
// effectiveClientAddr): the key of a user keyed by clientIP, and of
// anything else counted per client.
func clientAddress(r *http.Request) string {
	if c, ok := r.Context().Value(connInfoKey{}).(*connInfo); ok {
		return effectiveClientAddr(c, r.Header["X-Forwarded-For"])
	}
	// No Server accepted r, so nobody is trusted: the peer it is, read
	// without building a connInfo, as the routing allocates nothing.
	return route.ClientIP(r.RemoteAddr)
}

// effectiveClientAddr is the address of the client a request comes from,
// as far as the proxy can know it, given the facts of its connection and
// the request's X-Forwarded-For values in order. It is the peer, unless
// the peer is a trusted proxy: then it is the right-most address of the
// list that is not itself a trusted proxy, as nginx's real_ip_recursive
// reads it. Only trusted proxies wrote the entries right of that one, so
// it is the address the nearest of them saw; the entries left of it
// anybody may have written. The peer it stays when every entry is a
// trusted proxy or there is none, or when the entry to read is no
// address: a trusted proxy writes addresses there, so it did not write
// that one. An address is written as Go writes it (IPv4-mapped ones as
// IPv4, without a zone), so one client has one key.
//
// It is generic so that the fast path can pass fasthttp's values
// (RequestHeader.PeekAll) without copying them.
func effectiveClientAddr[S ~string | ~[]byte](c *connInfo, xff []S) string {
	if !c.trusted {
		return c.clientIP
	}
	for i := len(xff) - 1; i >= 0; i-- {
		for list := xff[i]; len(list) > 0; {
			var entry S
			entry, list = lastListElement(list)
			if entry = trimOWS(entry); len(entry) == 0 {
				continue
			}
			addr, ok := parseForwardedAddr(string(entry))
			switch {
			case !ok:
				return c.clientIP
			case !c.trust.contains(addr):
				return addr.String()
			}
		}
	}
	return c.clientIP
}

// parseForwardedAddr reads one X-Forwarded-For entry: an IP address,
// possibly with a port (some proxies write one), IPv4-mapped addresses
// as IPv4, zones dropped.
func parseForwardedAddr(s string) (netip.Addr, bool) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		ap, err := netip.ParseAddrPort(s)
		if err != nil {
			return netip.Addr{}, false
		}
		a = ap.Addr()
	}
	return a.Unmap().WithZone(""), true
}

// lastListElement splits a comma-separated list before its last element.
func lastListElement[S ~string | ~[]byte](list S) (last, rest S) {
	for i := len(list) - 1; i >= 0; i-- {
		if list[i] == ',' {
			return list[i+1:], list[:i]
		}
	}
	return list, list[:0]
}

// trimOWS trims the optional white space around a header value or list
// element (RFC 9110, 5.6.3).
func trimOWS[S ~string | ~[]byte](s S) S {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}
