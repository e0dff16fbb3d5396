package route

import (
	"fmt"
	"math/bits"
	"net"
	"net/http"
	"net/netip"
	"net/textproto"
	"net/url"
	"strings"

	"github.com/cespare/xxhash/v2"

	"github.com/pipit-dev/pipit/api/v1alpha1"
)

// buckets is how many buckets user keys are hashed into: one per unit of
// v1alpha1.Percent, so the canary at weight w takes exactly buckets
// [0, w).
const buckets = int32(v1alpha1.FullWeight)

// hasher hashes user keys with a salt into buckets, without allocating.
type hasher struct{ seed uint64 }

func newHasher(salt string) hasher { return hasher{seed: xxhash.Sum64String(salt)} }

// sum is the salted hash of s: xxHash64 of s, which is fast on keys of
// any length, mixed with the salt's hash by the finaliser of MurmurHash3,
// which spreads every input bit over the word, so that two salts put the
// same keys in unrelated buckets.
func (h hasher) sum(s string) uint64 {
	x := xxhash.Sum64String(s) ^ h.seed
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return x
}

// bucket maps key to [0, buckets) by the high word of sum × buckets,
// which is uniform without the bias of a modulo.
func (h hasher) bucket(key string) int32 { return bucketOf(h.sum(key)) }

// bucketOf is the bucket of a key whose salted hash is sum.
func bucketOf(sum uint64) int32 {
	hi, _ := bits.Mul64(sum, uint64(buckets))
	return int32(hi)
}

// inCanary reports whether key falls in the canary's buckets [0, w) at
// weight w. A key's bucket does not depend on the weight, so raising the
// weight only ever adds keys.
func (h hasher) inCanary(key string, w v1alpha1.Percent) bool {
	return h.bucket(key) < int32(w)
}

// Hasher places user keys in the proxy's buckets, for what splits users
// as the proxy does without routing requests (feature flags).
type Hasher struct{ h hasher }

// NewHasher returns the hasher of salt; the proxy's salt is the traffic
// section's, or the rollout's name.
func NewHasher(salt string) Hasher { return Hasher{newHasher(salt)} }

// InCanary reports whether the user of key gets the canary at weight w,
// exactly as the proxy decides for a request with that user key.
func (h Hasher) InCanary(key string, w v1alpha1.Percent) bool { return h.h.inCanary(key, w) }

// keyKind is where a user key is read.
type keyKind uint8

const (
	keyHeader keyKind = iota
	keyCookie
	keyQuery
	keyClientIP
)

// keySource is one compiled v1alpha1.UserKeySource.
type keySource struct {
	kind keyKind
	name string // canonical header name, cookie name or query parameter
}

func compileKeySources(srcs []v1alpha1.UserKeySource) ([]keySource, error) {
	out := make([]keySource, 0, len(srcs))
	for i, s := range srcs {
		var ks []keySource
		if s.Header != "" {
			ks = append(ks, keySource{keyHeader, textproto.CanonicalMIMEHeaderKey(s.Header)})
		}
		if s.Cookie != "" {
			ks = append(ks, keySource{keyCookie, s.Cookie})
		}
		if s.Query != "" {
			ks = append(ks, keySource{keyQuery, s.Query})
		}
		if s.ClientIP {
			ks = append(ks, keySource{kind: keyClientIP})
		}
		if len(ks) != 1 {
			return nil, fmt.Errorf("user key source %d: set exactly one of header, cookie, query and clientIP", i)
		}
		out = append(out, ks[0])
	}
	return out, nil
}

// userKey returns the first key present and not empty in r, reading each
// source as net/http would (Header.Get, Request.Cookie, URL.Query().Get),
// and the client's address with clientAddress (nil: ClientIP of the
// peer), without allocating (but for what clientAddress allocates).
func userKey(r *http.Request, srcs []keySource, clientAddress func(*http.Request) string) (string, bool) {
	for _, s := range srcs {
		var v string
		switch s.kind {
		case keyHeader:
			if vs := r.Header[s.name]; len(vs) > 0 {
				v = vs[0]
			}
		case keyCookie:
			v, _ = firstCookie(r.Header, s.name)
		case keyQuery:
			v, _ = firstQueryValue(r.URL.RawQuery, s.name)
		case keyClientIP:
			if clientAddress != nil {
				v = clientAddress(r)
			} else {
				v = ClientIP(r.RemoteAddr)
			}
		}
		if v != "" {
			return v, true
		}
	}
	return "", false
}

// ClientIP is the host part of a RemoteAddr, or all of it when it has no
// port (as in some tests and unix sockets). An address is written the one
// way netip writes it, and an IPv6 zone is dropped: it names an interface
// of this host, which means nothing upstream, and neither may split one
// client into several user keys.
func ClientIP(remoteAddr string) string {
	// netip.ParseAddrPort takes a bracket inside a zone ("[fe80::1%[]:80"),
	// which net.SplitHostPort refuses; the address is still the client's.
	if ap, err := netip.ParseAddrPort(remoteAddr); err == nil {
		return ap.Addr().WithZone("").String()
	}
	host := remoteAddr
	if h, _, err := net.SplitHostPort(remoteAddr); err == nil {
		host = h
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		return ip.WithZone("").String()
	}
	return host
}

// Limits net/http applies when it parses cookies and queries; the
// scanners below apply them too, so that they agree with it.
const (
	maxCookies = 3000
	// MaxQueryParams is how many parameters url.ParseQuery reads at
	// most; a query with more reads as none.
	MaxQueryParams = 10000
)

// cookieScanner yields the values of the cookies of one name in a
// request's Cookie headers, in order, exactly as Request.CookiesNamed
// reads them, but without allocating. name must be a valid cookie name.
type cookieScanner struct {
	lines []string
	line  string
	name  string
}

func newCookieScanner(h http.Header, name string) cookieScanner {
	lines := h["Cookie"]
	n := 0
	for _, l := range lines {
		n += strings.Count(l, ";") + 1
	}
	if n > maxCookies {
		lines = nil // net/http reads no cookie at all then
	}
	return cookieScanner{lines: lines, name: name}
}

func (s *cookieScanner) next() (string, bool) {
	for {
		for s.line == "" {
			if len(s.lines) == 0 {
				return "", false
			}
			s.line, s.lines = textproto.TrimString(s.lines[0]), s.lines[1:]
		}
		var part string
		part, s.line, _ = strings.Cut(s.line, ";")
		name, val, _ := strings.Cut(textproto.TrimString(part), "=")
		if textproto.TrimString(name) != s.name {
			continue
		}
		if v, ok := cookieValue(val); ok {
			return v, true
		}
	}
}

// cookieValue strips a cookie value's quotes and refuses bytes a cookie
// value may not hold, as net/http does.
func cookieValue(raw string) (string, bool) {
	if len(raw) > 1 && raw[0] == '"' && raw[len(raw)-1] == '"' {
		raw = raw[1 : len(raw)-1]
	}
	for i := 0; i < len(raw); i++ {
		if b := raw[i]; b < 0x20 || b >= 0x7f || b == '"' || b == ';' || b == '\\' {
			return "", false
		}
	}
	return raw, true
}

// firstCookie is Request.Cookie(name)'s value, without allocating.
func firstCookie(h http.Header, name string) (string, bool) {
	s := newCookieScanner(h, name)
	return s.next()
}

// queryScanner yields the values of one query parameter, decoded, in
// order, exactly as URL.Query reads them, allocating only to decode
// escaped names and values.
type queryScanner struct {
	rest string
	name string
}

func newQueryScanner(rawQuery, name string) queryScanner {
	if strings.Count(rawQuery, "&")+1 > MaxQueryParams {
		rawQuery = "" // url.ParseQuery gives up then
	}
	return queryScanner{rest: rawQuery, name: name}
}

func (s *queryScanner) next() (string, bool) {
	for s.rest != "" {
		var pair string
		pair, s.rest, _ = strings.Cut(s.rest, "&")
		if pair == "" || strings.Contains(pair, ";") {
			continue
		}
		k, v, _ := strings.Cut(pair, "=")
		k, err := url.QueryUnescape(k)
		if err != nil || k != s.name {
			continue
		}
		if v, err = url.QueryUnescape(v); err == nil {
			return v, true
		}
	}
	return "", false
}

// firstQueryValue is URL.Query().Get(name), without the map.
func firstQueryValue(rawQuery, name string) (string, bool) {
	s := newQueryScanner(rawQuery, name)
	return s.next()
}
