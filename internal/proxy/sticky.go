package proxy

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"golang.org/x/net/http/httpguts"

	"github.com/pipit-dev/pipit/api/v1alpha1"
)

// DefaultStickyTTL is how long a sticky-session cookie lasts when the
// spec does not say.
const DefaultStickyTTL = time.Hour

// stickyConfig is a compiled v1alpha1.StickySession.
type stickyConfig struct {
	name string
	ttl  time.Duration
	hash hasher
}

func compileSticky(s *v1alpha1.StickySession, service string, h hasher) (*stickyConfig, error) {
	if s == nil {
		return nil, nil
	}
	c := &stickyConfig{name: s.CookieName, ttl: DefaultStickyTTL, hash: h}
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

// stickyCookies are the cookies naming the upstreams of one table, worked
// out when the upstreams are set so that requests only compare strings.
type stickyCookies struct {
	name   string
	stable stickyCookie
	canary stickyCookie // zero with no canary
}

// stickyCookie is the cookie naming one upstream in one role.
type stickyCookie struct {
	// value is the role and a salted hash of the version, such as
	// canary.5f0c6e1b2a9d4e87. A cookie can only select among the
	// values of the current upstreams: a value naming anything else,
	// forged or stale, matches none and is replaced.
	value string
	// header is the Set-Cookie value, without and with Secure.
	header [2]string
}

func (c *stickyConfig) cookiesFor(stable, canary *backend) *stickyCookies {
	if c == nil {
		return nil
	}
	sc := &stickyCookies{name: c.name, stable: c.cookieFor(stable)}
	if canary != nil {
		sc.canary = c.cookieFor(canary)
	}
	return sc
}

func (c *stickyConfig) cookieFor(b *backend) stickyCookie {
	value := b.role + "." + strconv.FormatUint(c.hash.sum(b.up.Version), 16)
	hc := http.Cookie{
		Name: c.name, Value: value, Path: "/",
		MaxAge:   max(1, int(c.ttl/time.Second)),
		HttpOnly: true, SameSite: http.SameSiteLaxMode,
	}
	sc := stickyCookie{value: value}
	sc.header[0] = hc.String()
	hc.Secure = true
	sc.header[1] = hc.String()
	return sc
}

// honoured returns the role named by r's sticky cookie when it names the
// current version of that role; the caller has checked that the canary
// is open. With several cookies of the name, the first that names a
// current version counts.
func (c *stickyCookies) honoured(r *http.Request) (role string, ok bool) {
	if c == nil {
		return "", false
	}
	for s := newCookieScanner(r.Header, c.name); ; {
		v, ok := s.next()
		switch {
		case !ok:
			return "", false
		case v == c.stable.value:
			return RoleStable, true
		case c.canary.value != "" && v == c.canary.value:
			return RoleCanary, true
		}
	}
}

// header is the Set-Cookie value naming role's upstream; empty when
// sticky sessions are off.
func (c *stickyCookies) header(role string, secure bool) string {
	if c == nil {
		return ""
	}
	sc := c.stable
	if role == RoleCanary {
		sc = c.canary
	}
	if secure {
		return sc.header[1]
	}
	return sc.header[0]
}

// replaceWithStable serves requests while the canary is closed or absent:
// a request whose sticky cookie names anything but the current stable
// gets a cookie naming stable. Requests without the cookie get none,
// since there is no choice to remember.
func (c *stickyCookies) replaceWithStable(r *http.Request, secure bool) string {
	if c == nil {
		return ""
	}
	present := false
	for s := newCookieScanner(r.Header, c.name); ; {
		v, ok := s.next()
		switch {
		case !ok && present:
			return c.header(RoleStable, secure)
		case !ok:
			return ""
		case v == c.stable.value:
			return ""
		}
		present = true
	}
}
