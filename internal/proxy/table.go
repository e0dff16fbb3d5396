package proxy

import (
	"fmt"
	"net/http"
	"net/http/httputil"
	"sync/atomic"
	"time"

	"github.com/pipit-dev/pipit/internal/proxy/health"
	"github.com/pipit-dev/pipit/internal/proxy/route"
	"github.com/pipit-dev/pipit/internal/traffic"
)

// table is one immutable routing state of a Proxy: the state the routing
// decisions read (route.Table) and the backends they choose between.
// Writers build a new one and swap the pointer; a request routes on the
// table it loaded.
type table struct {
	route.Table
	stable *backend
	canary *backend // nil: no canary
	// visits counts the goals' visitors and conversions of both versions
	// since the canary first got a share of the traffic; nil without
	// goals.
	visits *traffic.Visits
}

// backend is one upstream in one role, with what the request path needs.
type backend struct {
	role string
	up   Upstream
	// version is up.Version, for the fast path's version header.
	version []byte
	rp      *httputil.ReverseProxy
	stats   *traffic.Counters
	// mirrored counts the copies of stable's requests this canary
	// answered; nil unless the canary of a Proxy that mirrors.
	mirrored *traffic.Counters
	// consecutiveErrors counts transport errors since the last answer
	// from this upstream; see finish.
	consecutiveErrors atomic.Int64
	// failuresInARow counts 5xx answers and transport errors in a row;
	// any other answer resets it. See detectOutlier.
	failuresInARow health.Run
}

// backend returns the upstream in role, nil when there is none.
func (t *table) backend(role string) *backend {
	if role == RoleCanary {
		return t.canary
	}
	return t.stable
}

// choose routes r (route.Table.Route): the decision, and the backend it
// sends r to. Users are counted from the first split on: at weight 0 a
// user sent to stable might be in the canary's buckets, and would be
// counted for stable however they are routed once the split starts.
// Users a rule sends to the canary are counted at once.
func (t *table) choose(r *http.Request) (*backend, route.Decision) {
	d := t.Route(r)
	if d.HasUser && t.visits != nil && (d.Canary || t.Weight() > 0) {
		t.visits.Observe(d.User, d.Canary, d.Goals)
	}
	if d.Canary {
		return t.canary, d
	}
	return t.stable, d
}

// dispatch routes r on t and carries out the decision's side effects on
// the way: the sticky cookie is added to the response, and a copy of r is
// handed to the mirror (which may replace r.Body with one that replays
// what it buffered). It returns the upstream that serves r.
func (p *Proxy) dispatch(t *table, w http.ResponseWriter, r *http.Request) *backend {
	b, d := t.choose(r)
	if d.SetCookie != "" {
		w.Header().Add("Set-Cookie", d.SetCookie)
	}
	if d.Mirror {
		p.mirror.send(r, t.canary)
	}
	return b
}

// newPolicy compiles cfg's TrafficSpec for p, a new Proxy.
func (p *Proxy) newPolicy(cfg Config) (*route.Policy, error) {
	tr, err := route.Compile(cfg.Traffic, route.Options{
		Name: cfg.Name, Logger: p.log, Clock: p.clock, Tasks: p.tasks, ClientAddress: clientAddress, Goals: cfg.Goals,
	})
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
	t.Table = t.WithUpstreams(stable.up.Version, versionOf(canary), canary != nil && !canary.unready())
	if versionOf(canary) != versionOf(old.canary) {
		// A new experiment: every user is new again, on both sides.
		t.visits = p.newVisits()
	}
	if p.mirror != nil && canary != nil && canary != old.canary {
		// canary is a new backend, not yet shared with requests.
		if old.canary != nil && old.canary.up.Version == canary.up.Version {
			canary.mirrored = old.canary.mirrored
		} else {
			canary.mirrored = traffic.NewCounters(canary.up.Version, p.epochs.Add(1))
		}
	}
	return &t
}

// newVisits is a new count of the goals' visits, nil without goals.
func (p *Proxy) newVisits() *traffic.Visits {
	if len(p.goals) == 0 {
		return nil
	}
	return traffic.NewVisits(p.goals, p.maxGoalUsers, p.epochs.Add(1))
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
	t.Table = t.WithCanaryAllowed(allowed)
	p.table.Store(&t)
}

// SetCookieKeys replaces the keys that sign and check sticky-session
// cookies, as after a rotation: from the next request on, new cookies are
// signed with k.Current, and cookies signed with k.Previous are honoured
// until one sticky TTL after k.RotatedAt. Cookies are not touched when
// sticky sessions are off, but the keys are kept.
func (p *Proxy) SetCookieKeys(k route.CookieKeys) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	t := *p.table.Load()
	rt, err := t.WithCookieKeys(k)
	if err != nil {
		return err
	}
	t.Table = rt
	p.table.Store(&t)
	return nil
}

// StickyTTL is how long a sticky-session cookie lasts, and so how long
// the previous key is honoured after a rotation; zero when sticky
// sessions are off.
func (p *Proxy) StickyTTL() time.Duration { return p.table.Load().StickyTTL() }
