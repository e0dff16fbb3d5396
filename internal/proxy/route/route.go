// Package route makes the proxy's routing decisions: which version, the
// stable or the canary, serves a request, which sticky cookie it is
// given, and whether a copy of it is mirrored to the canary. It compiles
// a v1alpha1.TrafficSpec (weights, user buckets, match rules, signed
// sticky cookies, the mirrored share) into a Policy, and holds the
// routing state as an immutable Table.
//
// It is pure decision: it opens no listener and does no upstream I/O.
// Both of the proxy's server paths call Table.Route with an *http.Request
// (the fast path with a view of its own request), so they decide alike.
package route

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"slices"
	"time"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/rollout"
)

// Roles of the two upstreams.
const (
	RoleStable = "stable"
	RoleCanary = "canary"
)

// Table is one immutable routing state: the weight, the versions in each
// role, whether the canary may take traffic, the compiled policy and the
// cookie keys. Its With methods return changed copies, so a request
// routes on the table it loaded while a writer makes the next one.
type Table struct {
	weight v1alpha1.Percent
	stable string // the stable version
	canary string // the canary version; empty: no canary
	// canaryReady says whether the canary has a ready replica to take
	// requests.
	canaryReady bool
	// closed shuts the canary off from every request (WithCanaryAllowed).
	closed bool
	// policy is the compiled TrafficSpec, the same for every table of a
	// proxy; nil routes by weight alone.
	policy *Policy
	// cookies are the sticky-session cookies naming these versions; nil
	// when sticky sessions are off.
	cookies *stickyCookies
	// keys sign and check the sticky cookies (WithCookieKeys).
	keys *cookieKeys
}

// NewTable returns the routing state of a new proxy, with no upstream
// yet (see WithUpstreams): the canary's weight, its policy (nil for the
// weight alone) and the keys of its sticky cookies. Without any key the
// table makes a random one of its own: its cookies are unforgeable, but
// honoured by no other proxy, nor after a restart.
func NewTable(weight v1alpha1.Percent, policy *Policy, keys CookieKeys) (Table, error) {
	ck, err := initialCookieKeys(keys)
	if err != nil {
		return Table{}, err
	}
	return Table{weight: weight, policy: policy, keys: ck}, nil
}

// Weight is the canary's share of traffic.
func (t *Table) Weight() v1alpha1.Percent { return t.weight }

// CanaryClosed reports whether the canary is shut off (WithCanaryAllowed).
func (t *Table) CanaryClosed() bool { return t.closed }

// StickyTTL is how long a sticky-session cookie lasts, and so how long
// the previous key is honoured after a rotation; zero when sticky
// sessions are off.
func (t *Table) StickyTTL() time.Duration {
	if t.policy == nil || t.policy.sticky == nil {
		return 0
	}
	return t.policy.sticky.ttl
}

// WithWeight is t with the canary's share of traffic set to w.
func (t Table) WithWeight(w v1alpha1.Percent) Table {
	t.weight = w
	return t
}

// WithCanaryAllowed is t with the canary opened to traffic or closed. A
// closed canary gets no request at all: not by weight, user bucket,
// rule, sticky cookie or mirror, and sticky cookies naming it are
// replaced.
func (t Table) WithCanaryAllowed(allowed bool) Table {
	t.closed = !allowed
	return t
}

// CanaryOpen reports whether t has a canary that requests may reach:
// one is set and it was not closed (WithCanaryAllowed).
func (t Table) CanaryOpen() bool { return t.canary != "" && !t.closed }

// WithUpstreams is t routing to the stable version and the canary version
// (empty for none); canaryReady says whether the canary has a ready
// replica. A canary of another version than t's, or none, reopens the
// canary role.
func (t Table) WithUpstreams(stable, canary string, canaryReady bool) Table {
	if canary != t.canary {
		t.closed = false
	}
	t.stable, t.canary, t.canaryReady = stable, canary, canaryReady
	t.cookies = t.policy.cookiesFor(stable, canary, t.keys)
	return t
}

// WithCookieKeys is t signing and checking sticky cookies with k, as
// after a rotation: new cookies are signed with k.Current, and cookies
// signed with k.Previous are honoured until one sticky TTL after
// k.RotatedAt. The keys are kept when sticky sessions are off.
func (t Table) WithCookieKeys(k CookieKeys) (Table, error) {
	keys, err := compileCookieKeys(k)
	if err != nil {
		return t, err
	}
	t.keys = keys
	t.cookies = t.policy.cookiesFor(t.stable, t.canary, keys)
	return t, nil
}

// Decision is what Route decided for one request.
type Decision struct {
	// Canary sends the request to the canary; false to stable.
	Canary bool
	// SetCookie is a Set-Cookie value for the response; empty for none.
	SetCookie string
	// Mirror sends a copy of the request to the canary as well.
	Mirror bool
	// User is the salted hash of the request's user key, which tells
	// users apart for the goals' counts; HasUser says the request had a
	// key. Both are set only when the policy has goals.
	User    uint64
	HasUser bool
	// Goals has bit i set when the request reaches goal i of the
	// policy's goals (Options.Goals).
	Goals uint32
}

// Role is the role of the upstream the decision sends the request to.
func (d Decision) Role() string {
	if d.Canary {
		return RoleCanary
	}
	return RoleStable
}

// Route decides which upstream serves r. It is the one place where that
// decision is made, in the order TrafficSpec documents: no canary, a
// closed one or one without a ready replica sends everything to stable;
// then the first matching rule; then a genuine sticky cookie naming a
// version still serving in its role (a canary cookie only while the
// canary takes traffic); then the user key's bucket; then a weighted draw
// at the 0.001% resolution of Percent. A plain weighted split (no
// TrafficSpec) takes the first and the last step only and allocates
// nothing; math/rand/v2's top-level source is per-thread, so the draw
// takes no lock.
func (t *Table) Route(r *http.Request) Decision {
	open := t.canary != "" && !t.closed && t.canaryReady
	if t.policy == nil {
		return Decision{Canary: open && t.draw()}
	}
	return t.policy.route(t, r, open)
}

// draw is the weighted random choice: true sends to the canary.
func (t *Table) draw() bool {
	return t.weight >= v1alpha1.FullWeight || (t.weight > 0 && rand.Int32N(buckets) < int32(t.weight))
}

// keyToCanary is the decision for a user key: the canary takes buckets
// [0, weight). A key's bucket does not depend on the weight, so raising
// the weight only ever adds users to the canary.
func (t *Table) keyToCanary(key string) bool {
	return t.policy.hash.inCanary(key, t.weight)
}

// Policy is a compiled v1alpha1.TrafficSpec.
type Policy struct {
	keys  []keySource
	hash  hasher
	rules []rule
	// rulesToCanary is whether a rule sends requests to the canary, which
	// then takes traffic even at weight 0.
	rulesToCanary bool
	sticky        *stickyConfig // nil: no sticky sessions
	// mirror is the share of stable's requests copied to the canary;
	// zero for none.
	mirror v1alpha1.Percent
	// clientAddress is the effective client address of a request, the
	// key of a user keyed by clientIP.
	clientAddress func(*http.Request) string
	// goals are the compiled spec.analysis.goals; goal i is bit i of
	// Decision.Goals.
	goals []rule
}

// route is Table.Route for a proxy with a TrafficSpec.
func (tr *Policy) route(t *Table, r *http.Request, open bool) Decision {
	var d Decision
	if len(tr.goals) > 0 {
		d = tr.visit(r)
	}
	secure := r.TLS != nil
	if !open {
		d.SetCookie = t.cookies.replaceWithStable(r, secure)
		return d
	}
	for i := range tr.rules {
		if ru := &tr.rules[i]; ru.matches(r) {
			// A rule's decision is not written in the cookie: it
			// holds for every request the rule matches anyway.
			// Requests pinned to stable are not mirrored either:
			// pinning keeps those users away from the canary.
			d.Canary = ru.toCanary
			return d
		}
	}
	// A canary that takes no traffic, by weight or by rule, honours no
	// cookie: a cookie would be the only way in, and that is not a
	// share of traffic anybody chose.
	if sc, _ := t.cookies.honoured(r, t.weight > 0 || tr.rulesToCanary); sc != nil {
		d.Canary = sc.role == RoleCanary
	} else {
		switch {
		case d.HasUser: // the key, read and hashed by visit already
			d.Canary = bucketOf(d.User) < int32(t.weight)
		case len(tr.goals) > 0: // visit found no key
			d.Canary = t.draw()
		default:
			if key, ok := userKey(r, tr.keys, tr.clientAddress); ok {
				d.Canary = t.keyToCanary(key)
			} else {
				d.Canary = t.draw()
			}
		}
		d.SetCookie = t.cookies.header(d.Role(), secure)
	}
	d.Mirror = !d.Canary && tr.drawMirror()
	return d
}

// visit reads what the goals' counts need of r: its user, and the goals
// it reaches.
func (tr *Policy) visit(r *http.Request) Decision {
	var d Decision
	key, ok := userKey(r, tr.keys, tr.clientAddress)
	if !ok {
		return d // a request without a user is nobody's visit
	}
	d.User, d.HasUser = tr.hash.sum(key), true
	for i := range tr.goals {
		if tr.goals[i].matches(r) {
			d.Goals |= 1 << i
		}
	}
	return d
}

// drawMirror picks the share of stable's requests to copy.
func (tr *Policy) drawMirror() bool {
	return tr.mirror > 0 && (tr.mirror >= v1alpha1.FullWeight || rand.Int32N(buckets) < int32(tr.mirror))
}

// Options is what compiling a TrafficSpec needs of its proxy.
type Options struct {
	// Name names the service (the rollout): the default salt of user
	// keys, the default sticky cookie's name (pipit-NAME), and part of
	// every sticky cookie's MAC.
	Name string
	// Logger receives the reloads of inFile lists; nil discards them.
	Logger *slog.Logger
	// Clock reads the time of list checks and of sticky cookies' expiry;
	// nil is the wall clock.
	Clock rollout.Clock
	// Tasks runs the reloads of inFile lists; the caller waits for them.
	Tasks Tasks
	// ClientAddress is the effective client address of a request, the
	// key of a user keyed by clientIP; nil takes the peer's address
	// (ClientIP of Request.RemoteAddr).
	ClientAddress func(*http.Request) string
	// Goals are spec.analysis.goals: each decision says which of them
	// the request reaches, and who its user is. They need a user key.
	Goals []v1alpha1.Goal
}

// Tasks runs work a request starts but does not wait for, on goroutines
// its owner waits for.
type Tasks interface {
	// Go runs task on a goroutine of its own and reports true, or
	// reports false without running it once no more work may start.
	Go(task func(ctx context.Context)) bool
}

// Compile checks and compiles spec. A spec that asks for nothing
// compiles to nil, the plain weighted split.
func Compile(spec *v1alpha1.TrafficSpec, opts Options) (*Policy, error) {
	return compilePolicy(spec, opts.Name, opts.compiled())
}

// compiled is o with its defaults applied.
func (o Options) compiled() compileOptions {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return compileOptions{
		log:           log,
		interval:      listCheckInterval,
		clock:         rollout.ClockOrSystem(o.Clock),
		tasks:         o.Tasks,
		clientAddress: o.ClientAddress,
		goals:         o.Goals,
	}
}

// compilePolicy is Compile with every option given. name is the
// service's name.
func compilePolicy(spec *v1alpha1.TrafficSpec, name string, opts compileOptions) (*Policy, error) {
	if spec == nil {
		if len(opts.goals) > 0 {
			return nil, fmt.Errorf("goals need a user key to tell users apart")
		}
		return nil, nil
	}
	salt := spec.Salt
	if salt == "" {
		salt = name
	}
	tr := &Policy{hash: newHasher(salt), clientAddress: opts.clientAddress}
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
	if m := spec.Mirror; m != nil {
		if m.Percent <= 0 || m.Percent > v1alpha1.FullWeight {
			return nil, fmt.Errorf("mirror: percent must be more than 0 and at most 100, not %s", m.Percent)
		}
		tr.mirror = m.Percent
	}
	if tr.goals, err = compileGoals(opts.goals, opts); err != nil {
		return nil, err
	}
	if len(tr.goals) > 0 && len(tr.keys) == 0 {
		return nil, fmt.Errorf("goals need a user key to tell users apart")
	}
	if len(tr.keys) == 0 && len(tr.rules) == 0 && tr.sticky == nil && tr.mirror == 0 {
		return nil, nil
	}
	return tr, nil
}
