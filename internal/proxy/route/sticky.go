package route

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"hash"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http/httpguts"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/rollout"
)

// DefaultStickyTTL is how long a sticky-session cookie lasts when the
// spec does not say.
const DefaultStickyTTL = time.Hour

// MinCookieKeyLen is the shortest key CookieKeys takes: as long as an
// HMAC-SHA256, the least RFC 2104 advises.
const MinCookieKeyLen = sha256.Size

// CookieKeys are the secrets sticky-session cookies are signed with. The
// values a cookie names (its role, the version serving in it) are public,
// since every response names its version; only the signature makes a
// cookie something the proxy issued, and not something a user computed
// or copied from another installation.
type CookieKeys struct {
	// Current signs every new cookie; at least MinCookieKeyLen bytes.
	Current []byte
	// Previous is the key Current replaced, nil when none. Cookies it
	// signed are still honoured for one sticky TTL after RotatedAt, so a
	// rotation moves no user; after that it is ignored.
	Previous []byte
	// RotatedAt is when Current replaced Previous.
	RotatedAt time.Time
}

// A sticky cookie's value is ROLE.EXPIRY.MAC: the role it keeps its user
// in, its expiry in Unix seconds, and an HMAC-SHA256 in unpadded base64url
// over the service, the role, the version serving in that role when it was
// issued and the expiry. Every part is a cookie-safe token. A cookie is
// honoured only while all of that still holds: a new version in the role,
// another service, another key, a changed role or expiry, or a passed
// expiry all make it a stranger's cookie, which earns a fresh draw and a
// fresh cookie.

// macLen is the length of a cookie's MAC:
// base64.RawURLEncoding.EncodedLen(sha256.Size).
const macLen = 43

// maxStickyCookies bounds the cookies of the sticky name looked at in one
// request. Each may cost an HMAC (two in a rotation's grace period), so a
// request stuffed with forged ones costs little; a browser holds at most a
// couple (one per path or domain).
const maxStickyCookies = 8

// clockSlack is how far beyond one TTL ahead a cookie's expiry may lie:
// the wall clock may step back (NTP) between issuing a cookie and
// checking it, and that must not cost its user the version.
const clockSlack = 60 // seconds

// macLabel starts the input of every MAC, so that one of these can never
// be taken for a MAC pipit makes of anything else with the same key.
const macLabel = "pipit sticky cookie v1"

// stickyConfig is a compiled v1alpha1.StickySession.
type stickyConfig struct {
	name string
	// service is bound into every MAC, so that a cookie of one rollout
	// means nothing to another's proxy of the same daemon.
	service string
	ttl     time.Duration
	// clock reads the time of expiries and of the rotation's grace period.
	clock rollout.Clock
}

func compileSticky(s *v1alpha1.StickySession, service string, clock rollout.Clock) (*stickyConfig, error) {
	if s == nil {
		return nil, nil
	}
	c := &stickyConfig{name: s.CookieName, service: service, ttl: DefaultStickyTTL, clock: clock}
	if c.name == "" {
		c.name = "pipit"
		if service != "" {
			c.name += "-" + service
		}
	}
	if !httpguts.ValidHeaderFieldName(c.name) { // cookie names are tokens, as header names
		return nil, fmt.Errorf("sticky session: %q is not a valid cookie name", c.name)
	}
	if s.TTL != nil {
		if s.TTL.Duration <= 0 {
			return nil, fmt.Errorf("sticky session: ttl must be positive, not %s", s.TTL.Duration)
		}
		c.ttl = s.TTL.Duration
	}
	return c, nil
}

// seconds is the TTL in whole seconds, at least one: the cookie's Max-Age
// and how far its expiry lies ahead when it is issued.
func (c *stickyConfig) seconds() int64 { return max(1, int64(c.ttl/time.Second)) }

// cookieKeys are CookieKeys ready for requests.
type cookieKeys struct {
	current  *macKey
	previous *macKey // nil: none
	// rotatedAt is when current replaced previous.
	rotatedAt time.Time
}

// initialCookieKeys compiles the keys of a new table (see NewTable).
func initialCookieKeys(k CookieKeys) (*cookieKeys, error) {
	if k.Current == nil && k.Previous == nil {
		k.Current = make([]byte, MinCookieKeyLen)
		rand.Read(k.Current) // never fails: it crashes the program instead
	}
	return compileCookieKeys(k)
}

func compileCookieKeys(k CookieKeys) (*cookieKeys, error) {
	if len(k.Current) < MinCookieKeyLen {
		return nil, fmt.Errorf("cookie keys: the current key has %d bytes, want at least %d", len(k.Current), MinCookieKeyLen)
	}
	ck := &cookieKeys{current: newMACKey(k.Current)}
	if k.Previous != nil {
		if len(k.Previous) < MinCookieKeyLen {
			return nil, fmt.Errorf("cookie keys: the previous key has %d bytes, want at least %d", len(k.Previous), MinCookieKeyLen)
		}
		if k.RotatedAt.IsZero() {
			return nil, fmt.Errorf("cookie keys: a previous key needs the time of the rotation")
		}
		ck.previous, ck.rotatedAt = newMACKey(k.Previous), k.RotatedAt
	}
	return ck, nil
}

// macKey is one key with a pool of HMAC states, so that neither signing
// nor checking a cookie allocates or keys an HMAC afresh.
type macKey struct{ pool sync.Pool }

func newMACKey(key []byte) *macKey {
	key = bytes.Clone(key) // the caller's slice may change, ours must not
	k := &macKey{}
	k.pool.New = func() any { return &macState{h: hmac.New(sha256.New, key)} }
	return k
}

// macState is one HMAC state with the buffers of one computation.
type macState struct {
	h      hash.Hash
	digits [20]byte
	sum    [sha256.Size]byte
	mac    [macLen]byte // the MAC computed, encoded
	given  [macLen]byte // the MAC a cookie carries, copied to be compared
}

// compute returns the encoded MAC of prefix and expiry, in s.
func (s *macState) compute(prefix []byte, expiry int64) []byte {
	s.h.Reset()
	s.h.Write(prefix)
	s.h.Write(strconv.AppendInt(s.digits[:0], expiry, 10))
	base64.RawURLEncoding.Encode(s.mac[:], s.h.Sum(s.sum[:0]))
	return s.mac[:]
}

// sign returns the encoded MAC of prefix and expiry.
func (k *macKey) sign(prefix []byte, expiry int64) string {
	s := k.pool.Get().(*macState)
	defer k.pool.Put(s)
	return string(s.compute(prefix, expiry))
}

// verify reports whether mac is the encoded MAC of prefix and expiry. The
// comparison takes the same time whichever byte differs; the encoding is
// compared, not decoded, so that no other spelling of a MAC passes.
func (k *macKey) verify(prefix []byte, expiry int64, mac string) bool {
	if len(mac) != macLen {
		return false
	}
	s := k.pool.Get().(*macState)
	defer k.pool.Put(s)
	want := s.compute(prefix, expiry)
	copy(s.given[:], mac)
	return subtle.ConstantTimeCompare(want, s.given[:]) == 1
}

// macPrefix is the input of a cookie's MAC before its expiry. Each value
// is preceded by its length, so that no two lists of values give the same
// bytes.
func macPrefix(service, role, version string) []byte {
	b := []byte(macLabel)
	for _, s := range [...]string{service, role, version} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	return b
}

// stickyCookies sign and check the cookies naming the upstreams of one
// table; they are made again when the upstreams or the keys change.
type stickyCookies struct {
	*stickyConfig
	keys *cookieKeys
	// previousUntil is the Unix second from which the previous key is
	// no longer honoured: one TTL after the rotation.
	previousUntil int64
	stable        *stickyCookie
	canary        *stickyCookie // nil with no canary
}

// stickyCookie is the cookie naming one upstream in one role.
type stickyCookie struct {
	role   string
	prefix []byte // macPrefix of the service, the role and its version
	// minted is the last cookie issued. Every cookie issued in the same
	// second is the same, so it is signed once a second at most and the
	// requests of that second take it as it is.
	minted atomic.Pointer[mintedCookie]
}

// mintedCookie is a cookie issued at one second.
type mintedCookie struct {
	second int64
	header [2]string // the Set-Cookie value, without and with Secure
}

// cookiesFor returns the sticky cookies naming the stable version and
// the canary version (empty for none), signed with keys; nil when sticky
// sessions are off.
func (tr *Policy) cookiesFor(stable, canary string, keys *cookieKeys) *stickyCookies {
	if tr == nil || tr.sticky == nil {
		return nil
	}
	c := tr.sticky
	sc := &stickyCookies{stickyConfig: c, keys: keys, stable: c.cookieFor(RoleStable, stable)}
	if keys.previous != nil {
		sc.previousUntil = keys.rotatedAt.Add(c.ttl).Unix()
	}
	if canary != "" {
		sc.canary = c.cookieFor(RoleCanary, canary)
	}
	return sc
}

func (c *stickyConfig) cookieFor(role, version string) *stickyCookie {
	return &stickyCookie{role: role, prefix: macPrefix(c.service, role, version)}
}

// honoured returns the cookie of r that keeps its user where it is: the
// first of the name, among the first maxStickyCookies, that is genuine. A
// genuine cookie names a role with an upstream (the canary only when
// canary is true), has an expiry that has not passed and lies at most one
// TTL ahead (give or take clockSlack), and carries the MAC of those under the current key or, for
// one TTL after a rotation, the previous one. present reports whether r
// has a cookie of the name at all.
func (c *stickyCookies) honoured(r *http.Request, canary bool) (sc *stickyCookie, present bool) {
	if c == nil {
		return nil, false
	}
	var now int64 // read once, when a cookie gets as far as its expiry
	s := newCookieScanner(r.Header, c.name)
	for range maxStickyCookies {
		v, ok := s.next()
		if !ok {
			return nil, present
		}
		present = true
		sc, expiry, mac, ok := c.parse(v, canary)
		if !ok {
			continue
		}
		if now == 0 {
			now = c.clock.Now().Unix()
		}
		if expiry <= now || expiry > now+c.seconds()+clockSlack {
			continue
		}
		if c.keys.current.verify(sc.prefix, expiry, mac) ||
			(c.keys.previous != nil && now < c.previousUntil && c.keys.previous.verify(sc.prefix, expiry, mac)) {
			return sc, true
		}
	}
	return nil, true
}

// parse splits a cookie value into the cookie of the role it names, its
// expiry and its MAC; ok is false when it cannot be a cookie of c's.
func (c *stickyCookies) parse(v string, canary bool) (sc *stickyCookie, expiry int64, mac string, ok bool) {
	role, rest, _ := strings.Cut(v, ".")
	exp, mac, found := strings.Cut(rest, ".")
	if !found || len(mac) != macLen {
		return nil, 0, "", false
	}
	switch {
	case role == RoleStable:
		sc = c.stable
	case role == RoleCanary && canary:
		sc = c.canary
	}
	expiry, ok = parseExpiry(exp)
	return sc, expiry, mac, ok && sc != nil
}

// parseExpiry reads a Unix time in seconds as cookies write it: decimal
// digits, no sign, no leading zero, so that a cookie has one spelling.
func parseExpiry(s string) (int64, bool) {
	if s == "" || len(s) > 18 || s[0] == '0' {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		d := s[i] - '0'
		if d > 9 {
			return 0, false
		}
		n = n*10 + int64(d)
	}
	return n, true
}

// header is a Set-Cookie value naming role's upstream, issued now; empty
// when sticky sessions are off.
func (c *stickyCookies) header(role string, secure bool) string {
	if c == nil {
		return ""
	}
	sc := c.stable
	if role == RoleCanary {
		sc = c.canary
	}
	now := c.clock.Now().Unix()
	m := sc.minted.Load()
	if m == nil || m.second != now {
		// Two requests of a new second may both sign: the same cookie.
		m = c.mint(sc, now)
		sc.minted.Store(m)
	}
	if secure {
		return m.header[1]
	}
	return m.header[0]
}

// mint issues the cookie of sc at second now, signed with the current key.
func (c *stickyCookies) mint(sc *stickyCookie, now int64) *mintedCookie {
	expiry := now + c.seconds()
	value := sc.role + "." + strconv.FormatInt(expiry, 10) + "." + c.keys.current.sign(sc.prefix, expiry)
	hc := http.Cookie{
		Name: c.name, Value: value, Path: "/", MaxAge: int(c.seconds()),
		HttpOnly: true, SameSite: http.SameSiteLaxMode,
	}
	m := &mintedCookie{second: now}
	m.header[0] = hc.String()
	hc.Secure = true
	m.header[1] = hc.String()
	return m
}

// replaceWithStable serves requests while the canary is closed or absent:
// a request with a sticky cookie but no genuine one naming stable gets a
// cookie naming stable. Requests without the cookie get none, since there
// is no choice to remember.
func (c *stickyCookies) replaceWithStable(r *http.Request, secure bool) string {
	if sc, present := c.honoured(r, false); !present || sc != nil {
		return ""
	}
	return c.header(RoleStable, secure)
}
