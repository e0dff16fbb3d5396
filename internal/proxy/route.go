package proxy

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httputil"
	"slices"
	"sync/atomic"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/traffic"
)

// table is one immutable routing state. Writers build a new one and swap
// the pointer; a request routes on the table it loaded.
type table struct {
	weight v1alpha1.Percent
	stable *backend
	canary *backend // nil: no canary
	// closed shuts the canary off from every request (SetCanaryAllowed).
	closed bool
	// traffic is the compiled TrafficSpec, the same for every table of a
	// Proxy; nil routes by weight alone.
	policy *policy
	// cookies are the sticky-session cookies naming these upstreams; nil
	// when sticky sessions are off.
	cookies *stickyCookies
	// keys sign and check the sticky cookies (SetCookieKeys).
	keys *cookieKeys
}

// backend is one upstream in one role, with what the request path needs.
type backend struct {
	role  string
	up    Upstream
	rp    *httputil.ReverseProxy
	stats *traffic.Counters
	// mirrored counts the copies of stable's requests this canary
	// answered; nil unless the canary of a Proxy that mirrors.
	mirrored *traffic.Counters
	// consecutiveErrors counts transport errors since the last answer
	// from this upstream; see finish.
	consecutiveErrors atomic.Int64
}

// backend returns the upstream in role, nil when there is none.
func (t *table) backend(role string) *backend {
	if role == RoleCanary {
		return t.canary
	}
	return t.stable
}

// decision is what route decided for one request.
type decision struct {
	b *backend
	// setCookie is a Set-Cookie value for the response; empty for none.
	setCookie string
	// mirror sends a copy of the request to the canary as well.
	mirror bool
}

// route decides which upstream serves r. It is the one place where that
// decision is made, in the order TrafficSpec documents: no canary, a
// closed one or one without a ready replica sends everything to stable; then the first matching rule;
// then a genuine sticky cookie naming a version still serving in its role
// (a canary cookie only while the canary takes traffic); then
// the user key's bucket; then a weighted draw at the 0.001% resolution of
// Percent. A plain weighted split (no TrafficSpec) takes the first and
// the last step only and allocates nothing; math/rand/v2's top-level
// source is per-thread, so the draw takes no lock.
func (t *table) route(r *http.Request) decision {
	// A canary without a ready replica (SetEndpoints) serves nobody.
	open := t.canary != nil && !t.closed && !t.canary.unready()
	if t.policy == nil {
		if open && t.draw() {
			return decision{b: t.canary}
		}
		return decision{b: t.stable}
	}
	return t.policy.route(t, r, open)
}

// dispatch routes r and carries out the decision's side effects on the
// way: the sticky cookie is added to the response, and a copy of r is
// handed to the mirror (which may replace r.Body with one that replays
// what it buffered). It returns the upstream that serves r.
func (t *table) dispatch(w http.ResponseWriter, r *http.Request) *backend {
	d := t.route(r)
	if d.setCookie != "" {
		w.Header().Add("Set-Cookie", d.setCookie)
	}
	if d.mirror {
		t.policy.mirror.send(r, t.canary)
	}
	return d.b
}

// draw is the weighted random choice: true sends to the canary.
func (t *table) draw() bool {
	return t.weight >= v1alpha1.FullWeight || (t.weight > 0 && rand.Int32N(Buckets) < int32(t.weight))
}

// keyToCanary is the decision for a user key: the canary takes buckets
// [0, weight). A key's bucket does not depend on the weight, so raising
// the weight only ever adds users to the canary.
func (t *table) keyToCanary(key string) bool {
	return t.policy.hash.bucket(key) < int32(t.weight)
}

// traffic is a compiled v1alpha1.TrafficSpec.
type policy struct {
	keys  []keySource
	hash  hasher
	rules []rule
	// rulesToCanary is whether a rule sends requests to the canary, which
	// then takes traffic even at weight 0.
	rulesToCanary bool
	sticky        *stickyConfig // nil: no sticky sessions
	mirror        *mirror       // nil: no mirroring
}

// route is table.route for a Proxy with a TrafficSpec.
func (tr *policy) route(t *table, r *http.Request, open bool) decision {
	secure := r.TLS != nil
	if !open {
		return decision{b: t.stable, setCookie: t.cookies.replaceWithStable(r, secure)}
	}
	for i := range tr.rules {
		if ru := &tr.rules[i]; ru.matches(r) {
			// A rule's decision is not written in the cookie: it
			// holds for every request the rule matches anyway.
			// Requests pinned to stable are not mirrored either:
			// pinning keeps those users away from the canary.
			if ru.toCanary {
				return decision{b: t.canary}
			}
			return decision{b: t.stable}
		}
	}
	var d decision
	// A canary that takes no traffic, by weight or by rule, honours no
	// cookie: a cookie would be the only way in, and that is not a
	// share of traffic anybody chose.
	if sc, _ := t.cookies.honoured(r, t.weight > 0 || tr.rulesToCanary); sc != nil {
		d.b = t.backend(sc.role)
	} else {
		var toCanary bool
		if key, ok := userKey(r, tr.keys); ok {
			toCanary = t.keyToCanary(key)
		} else {
			toCanary = t.draw()
		}
		d.b = t.stable
		if toCanary {
			d.b = t.canary
		}
		d.setCookie = t.cookies.header(d.b.role, secure)
	}
	d.mirror = d.b == t.stable && tr.mirror.draw()
	return d
}

// compilePolicy checks and compiles spec. name is the service's name,
// the default salt, the suffix of the default cookie name and part of
// every sticky cookie's MAC. A spec that asks for nothing compiles to
// nil, the plain weighted split.
func compilePolicy(spec *v1alpha1.TrafficSpec, name string, opts compileOptions) (*policy, error) {
	if spec == nil {
		return nil, nil
	}
	salt := spec.Salt
	if salt == "" {
		salt = name
	}
	tr := &policy{hash: newHasher(salt)}
	var err error
	if tr.keys, err = compileKeySources(spec.UserKey); err != nil {
		return nil, err
	}
	if tr.rules, err = compileRules(spec.Rules, opts); err != nil {
		return nil, err
	}
	tr.rulesToCanary = slices.ContainsFunc(tr.rules, func(r rule) bool { return r.toCanary })
	if tr.sticky, err = compileSticky(spec.StickySession, name, opts.clock); err != nil {
		return nil, err
	}
	if tr.mirror, err = compileMirror(spec.Mirror, opts.tasks); err != nil {
		return nil, err
	}
	if len(tr.keys) == 0 && len(tr.rules) == 0 && tr.sticky == nil && tr.mirror == nil {
		return nil, nil
	}
	return tr, nil
}

// newPolicy compiles cfg's TrafficSpec for p, a new Proxy.
func (p *Proxy) newPolicy(cfg Config) (*policy, error) {
	tr, err := compilePolicy(cfg.Traffic, cfg.Name, compileOptions{log: p.log, interval: listCheckInterval, clock: p.clock, tasks: p.tasks})
	if err != nil {
		return nil, fmt.Errorf("traffic: %w", err)
	}
	return tr, nil
}

// withUpstreams returns a copy of old that serves stable and canary. A
// canary of another version than old's (or none) reopens the canary
// role, and a new canary gets its own mirror counters.
func (p *Proxy) withUpstreams(old *table, stable, canary *backend) *table {
	t := *old
	t.stable, t.canary = stable, canary
	if versionOf(canary) != versionOf(old.canary) {
		t.closed = false
	}
	if tr := t.policy; tr != nil {
		if canary != nil && canary != old.canary && tr.mirror != nil {
			// canary is a new backend, not yet shared with requests.
			if old.canary != nil && old.canary.up.Version == canary.up.Version {
				canary.mirrored = old.canary.mirrored
			} else {
				canary.mirrored = traffic.NewCounters(canary.up.Version, p.epochs.Add(1))
			}
		}
		t.cookies = tr.sticky.cookiesFor(stable, canary, t.keys)
	}
	return &t
}

func versionOf(b *backend) string {
	if b == nil {
		return ""
	}
	return b.up.Version
}

// SetCanaryAllowed opens or closes the canary to traffic. A closed canary
// gets no request at all: not by weight, user bucket, rule, sticky cookie
// or mirror, and sticky cookies naming it are replaced. This is what a
// rollback needs, since rules and cookies would otherwise keep sending
// their users to the canary at weight 0. A canary is open when set; once
// closed it stays closed until SetCanaryAllowed(true) or until
// SetEndpoints sets a canary of another version.
func (p *Proxy) SetCanaryAllowed(allowed bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	t := *p.table.Load()
	t.closed = !allowed
	p.table.Store(&t)
}
