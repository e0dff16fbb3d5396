// Package proxy is pipit's built-in data plane: an HTTP reverse proxy that
// splits traffic between a stable and a canary upstream by weight, measures
// each version, and probes both for health.
//
// It knows nothing of rollouts. The daemon tells it the upstreams and the
// weight (SetEndpoints, SetWeight), reads its measurements (Stats) and
// listens to its health checker (health.Config.OnChange) and to its
// outlier detection (Config.OnEject). A Server serves a Proxy, or a Mux of
// several, on one listener: HTTP/1 on a fast path of its own, HTTP/2 (TLS
// or h2c) and protocol upgrades on net/http, TLS from certificate files.
package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/textproto"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/proxy/health"
	"github.com/pipit-dev/pipit/internal/proxy/route"
	"github.com/pipit-dev/pipit/internal/proxy/upstream"
	"github.com/pipit-dev/pipit/internal/rollout"
	"github.com/pipit-dev/pipit/internal/traffic"
)

// Roles of the two upstreams. Stats, health and metrics are keyed by role.
const (
	RoleStable = route.RoleStable
	RoleCanary = route.RoleCanary
)

// DefaultVersionHeader is the response header that names the version which
// answered, for callers that want it on (Config.VersionHeader).
const DefaultVersionHeader = "X-Pipit-Version"

// Transport defaults, used where Config leaves a field zero.
const (
	DefaultDialTimeout           = 5 * time.Second
	DefaultResponseHeaderTimeout = 60 * time.Second
	DefaultIdleConnTimeout       = 90 * time.Second
	DefaultMaxIdleConnsPerHost   = 512
	DefaultRetries               = 2
	DefaultOutlierFailures       = 5
)

// Upstream is one version of the service.
type Upstream struct {
	// Version labels the upstream in stats, metrics and the version
	// header; it defaults to the URL.
	Version string
	// URL is the base URL requests are sent to: http or https with a host.
	URL *url.URL
	// Replicas are more base URLs of the same version. Requests are
	// spread round-robin over URL and Replicas, and a request that could
	// not connect is retried on the next one. Health checks and mirrored
	// copies use URL.
	Replicas []*url.URL

	// replicas are the live side of the upstream once a backend serves
	// it: its endpoints and their connection pools. Copies handed out
	// have none.
	replicas *upstream.Group
}

// Config configures a Proxy. Zero durations and sizes take the defaults
// above.
type Config struct {
	// Stable receives all traffic that does not go to the canary. A
	// Stable with a Version and no URL starts a proxy steered by
	// SetEndpoints before any replica of it is ready.
	Stable Upstream
	// Canary is the version being rolled out; nil sends everything to
	// stable whatever the weight.
	Canary *Upstream
	// Weight is the canary's initial share of traffic.
	Weight v1alpha1.Percent

	// DialTimeout bounds connecting to an upstream.
	DialTimeout time.Duration
	// ResponseHeaderTimeout bounds the wait for an upstream's response
	// headers once the request is sent; past it the proxy answers 504.
	// Bodies (such as event streams) are not bounded.
	ResponseHeaderTimeout time.Duration
	// IdleConnTimeout is how long an idle keep-alive connection is kept.
	IdleConnTimeout time.Duration
	// MaxIdleConnsPerHost is how many idle keep-alive connections are
	// kept per upstream. Go's default of 2 would make a busy proxy open
	// and close connections all the time.
	MaxIdleConnsPerHost int

	// VersionHeader names the response header set to the answering
	// version on every response, errors included; empty sets none.
	VersionHeader string

	// Logger receives debug logs of upstream errors; nil discards them.
	Logger *slog.Logger

	// Retries is how many more times a request is sent when it could
	// not connect to its upstream: only idempotent requests (GET, HEAD,
	// OPTIONS, PUT, DELETE) and only to the same version, on its next
	// replica when it has several. Zero takes DefaultRetries; negative
	// turns retries off. Requests that met a kept-alive connection the
	// upstream had just closed are sent again on a fresh one besides.
	Retries int
	// OutlierFailures is passive outlier detection on the canary: this
	// many 5xx answers or transport errors in a row from it eject it at
	// once. An ejected canary gets no traffic (as SetCanaryAllowed(false))
	// until SetCanaryAllowed(true) or a canary of another version. Zero
	// takes DefaultOutlierFailures; negative turns detection off.
	OutlierFailures int
	// OnEject is called, on a goroutine the Proxy owns and Close waits
	// for, when the canary is ejected, with the role ejected and why.
	OnEject func(role, reason string)

	// Name names the service (the rollout): the default salt of user
	// keys and the default sticky cookie's name, pipit-NAME.
	Name string
	// Traffic says who gets the canary beyond the weight: user keys,
	// rules, sticky sessions, mirroring (see package route); nil splits by
	// weight alone.
	Traffic *v1alpha1.TrafficSpec
	// CookieKeys sign the sticky-session cookies (see SetCookieKeys).
	// None makes a random key for this Proxy alone: its cookies are
	// honoured by no other Proxy, nor after a restart.
	CookieKeys route.CookieKeys
	// Clock reads the time of cookie expiries, of a key rotation's grace
	// period and of health-check intervals; nil is the wall clock.
	Clock rollout.Clock
	// Goals are spec.analysis.goals: with them (and a user key in
	// Traffic) the proxy counts each version's visitors and conversions
	// (Stats, traffic.Visits), starting over with each canary.
	Goals []v1alpha1.Goal
	// MaxGoalUsers bounds the users remembered for the goals' counts;
	// zero takes traffic.DefaultMaxUsers.
	MaxGoalUsers int
}

// Proxy is an http.Handler that sends each request to the stable or the
// canary upstream. Its routing table is an immutable value behind an atomic
// pointer: a request reads it once, so changing the weight or the
// upstreams never disturbs a request in flight.
type Proxy struct {
	transport *http.Transport
	version   versionHeader
	log       *slog.Logger
	clock     rollout.Clock
	// tasks runs what requests start and do not wait for (mirrored
	// copies, OnEject, list reloads); Close waits for it.
	tasks *background
	// mirror sends the copies the routing decides on; nil when the
	// TrafficSpec mirrors nothing.
	mirror *mirror

	table atomic.Pointer[table]
	// mu serialises writers of table (SetWeight, SetEndpoints) so that
	// one never loses the other's change; readers do not take it.
	mu sync.Mutex
	// epochs numbers counter sets, so Stats.Since can tell a new
	// version's counters from the old ones.
	epochs atomic.Uint64
	// passive is where bursts of transport errors are reported while a
	// health checker runs; nil otherwise.
	passive atomic.Pointer[health.Passive]

	transportCfg upstream.Config // of the fast path's connections
	retries      int
	outliers     health.Outliers
	onEject      func(role, reason string)
	// ejection is the last ejection of a canary; see eject.
	ejection atomic.Pointer[ejection]
	// goals name the goals counted (Config.Goals); none counts no visit.
	goals        []string
	maxGoalUsers int
}

// New builds a Proxy from cfg.
func New(cfg Config) (*Proxy, error) {
	if err := checkWeight(cfg.Weight); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	tc := upstream.Config{
		DialTimeout:   orDefault(cfg.DialTimeout, DefaultDialTimeout),
		HeaderTimeout: orDefault(cfg.ResponseHeaderTimeout, DefaultResponseHeaderTimeout),
		IdleTimeout:   orDefault(cfg.IdleConnTimeout, DefaultIdleConnTimeout),
		MaxIdle:       cfg.MaxIdleConnsPerHost,
		ClientFault:   func(err error) bool { return clientFaultStatus(err) != 0 },
	}
	if tc.MaxIdle <= 0 {
		tc.MaxIdle = DefaultMaxIdleConnsPerHost
	}
	dialer := &net.Dialer{Timeout: tc.DialTimeout, KeepAlive: 30 * time.Second}
	p := &Proxy{
		transportCfg: tc,
		retries:      orDefaultInt(cfg.Retries, DefaultRetries),
		outliers:     health.NewOutliers(orDefaultInt(cfg.OutlierFailures, DefaultOutlierFailures)),
		onEject:      cfg.OnEject,
		transport: &http.Transport{
			Proxy:                 nil, // upstreams are reached directly, never through HTTP_PROXY
			DialContext:           dialer.DialContext,
			ForceAttemptHTTP2:     true,
			MaxIdleConnsPerHost:   tc.MaxIdle,
			IdleConnTimeout:       tc.IdleTimeout,
			ResponseHeaderTimeout: tc.HeaderTimeout,
			TLSHandshakeTimeout:   10 * time.Second,
			ExpectContinueTimeout: time.Second,
			// Pass the client's Accept-Encoding through untouched instead
			// of asking for gzip and decompressing on the client's behalf.
			DisableCompression: true,
		},
		version: versionHeader{name: cfg.VersionHeader, key: []byte(textproto.CanonicalMIMEHeaderKey(cfg.VersionHeader))},
		log:     log,
		clock:   rollout.ClockOrSystem(cfg.Clock),
		tasks:   newBackground(),

		maxGoalUsers: cfg.MaxGoalUsers,
	}
	for _, g := range cfg.Goals {
		p.goals = append(p.goals, g.Name)
	}
	tr, err := p.newPolicy(cfg)
	if err != nil {
		return nil, err
	}
	if cfg.Traffic != nil {
		if p.mirror, err = compileMirror(cfg.Traffic.Mirror, p.tasks); err != nil {
			return nil, fmt.Errorf("traffic: %w", err)
		}
	}
	rt, err := route.NewTable(cfg.Weight, tr, cfg.CookieKeys)
	if err != nil {
		return nil, err
	}
	p.table.Store(&table{Table: rt, visits: p.newVisits()})
	if err := p.initialUpstreams(cfg); err != nil {
		return nil, err
	}
	return p, nil
}

// ServeHTTP forwards r to the upstream chosen by the routing table and
// records the outcome for that version; r's target is put in normal form
// first (normalizeRequest), or refused. It is the path of HTTP/2,
// protocol upgrades, and of a Proxy used as a plain http.Handler; a
// Server takes the fast path (fast.go) for HTTP/1 requests.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !normalizeRequest(w, r) {
		return
	}
	// Latency is measured on the monotonic clock, not through p.clock: it
	// times this request and decides nothing.
	start := time.Now()
	p.forward(w, r, p.dispatch(p.table.Load(), w, r), start)
}

// forward sends r to b, or answers for b when it has no ready replica,
// and records the outcome for b's version; start is when r came in.
func (p *Proxy) forward(w http.ResponseWriter, r *http.Request, b *backend, start time.Time) {
	if b.unready() {
		p.answerUnready(w, b, start)
		return
	}
	rec := newRecorder(w, b)
	rec.p, rec.start = p, start
	// A deferred call, not a plain one: ReverseProxy panics with
	// http.ErrAbortHandler when an upstream breaks off mid-body, and that
	// request must still be counted (as a transport error).
	defer p.finish(rec, r)
	b.rp.ServeHTTP(rec, r)
	rec.completed = true
}

// finish accounts for one request of the net/http path.
func (p *Proxy) finish(rec *recorder, r *http.Request) {
	defer rec.release()
	failed := rec.err != nil || !rec.completed
	switch {
	case rec.accounted || rec.clientFault:
		// Counted when the protocol switched, or the client's fault.
	case failed && r.Context().Err() != nil:
		// The client went away: that says nothing about the upstream,
		// so it is neither counted nor held against the version.
	case failed:
		reason := "the response broke off"
		if rec.err != nil {
			reason = rec.err.Error()
		}
		p.account(rec.b, traffic.ClassError, time.Since(rec.start), reason)
	default:
		p.account(rec.b, traffic.ClassOf(rec.code), time.Since(rec.start), "")
	}
}

// account records one request's outcome for b, on either path: its
// statistics, the passive health check's run of transport errors and the
// outlier detector's run of failures. reason says what failed.
func (p *Proxy) account(b *backend, class traffic.Class, d time.Duration, reason string) {
	b.stats.Record(class, d)
	p.detectOutlier(b, class, reason)
	if class != traffic.ClassError {
		if b.consecutiveErrors.Load() != 0 {
			b.consecutiveErrors.Store(0)
		}
		return
	}
	n := b.consecutiveErrors.Add(1)
	sink := p.passive.Load()
	// Swapping the counter back to zero lets exactly one request report
	// each run of Threshold errors, and the next run report again.
	if sink != nil && n >= sink.Threshold() && b.consecutiveErrors.CompareAndSwap(n, 0) {
		sink.Report(b.role, b.up.Version, n, reason)
	}
}

// answerError is ReverseProxy's ErrorHandler: the upstream gave no usable
// answer, so the proxy gives its own (failedUpstream).
func (p *Proxy) answerError(w http.ResponseWriter, r *http.Request, err error) {
	rec := w.(*recorder) // ServeHTTP hands every ReverseProxy a *recorder
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		// The body passed Server's bound: the client's doing, not the
		// upstream's.
		rec.clientFault = true
		if rec.code == 0 {
			http.Error(w, "request body too large", http.StatusRequestEntityTooLarge)
		}
		return
	}
	rec.err = err
	if r.Context().Err() != nil || rec.code != 0 {
		return // nobody is listening, or the answer has already begun
	}
	p.writeStd(w, rec.b, p.failedUpstream(rec.b, err))
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

// Stats returns the cumulative measurements now. A role with no upstream
// (no canary) has zero stats and an empty Version.
//
// Counters belong to a version: when a role's Version changes (a new
// canary), that role starts from zero with a new counter set, and
// requests still in flight to the old version finish into the old set, so
// the two never mix. Since notices the change and counts the window from
// the new version's start.
func (p *Proxy) Stats() traffic.Stats {
	t := p.table.Load()
	s := traffic.Stats{Stable: t.stable.stats.Snapshot()}
	if t.canary != nil {
		s.Canary = t.canary.stats.Snapshot()
	}
	if t.visits != nil {
		s.AddVisits(t.visits)
	}
	return s
}

// SetWeight sets the canary's share of traffic, from 0 to 100%. Requests
// already routed keep their upstream.
func (p *Proxy) SetWeight(w v1alpha1.Percent) error {
	if err := checkWeight(w); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	t := *p.table.Load()
	t.Table = t.WithWeight(w)
	p.table.Store(&t)
	return nil
}

// StableReady reports whether the stable version can take requests: it
// has a ready replica. A version at fixed URLs always has.
func (p *Proxy) StableReady() bool { return !p.table.Load().stable.unready() }

// Weight is the canary weight last set. With no canary upstream all
// traffic goes to stable whatever it says.
func (p *Proxy) Weight() v1alpha1.Percent { return p.table.Load().Weight() }

// setUpstreams replaces the upstreams; canary may be nil. An upstream
// whose Version and URL are unchanged keeps its connections and counters.
// A role whose Version changes starts new counters (see Stats). Requests
// already routed finish against the upstream they were sent to.
func (p *Proxy) setUpstreams(stable Upstream, canary *Upstream) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	old := p.table.Load()
	sb, err := p.backendFor(RoleStable, stable, old.stable)
	if err != nil {
		return err
	}
	var cb *backend
	if canary != nil {
		if cb, err = p.backendFor(RoleCanary, *canary, old.canary); err != nil {
			return err
		}
	}
	p.table.Store(p.withUpstreams(old, sb, cb))
	return nil
}

// RoutedVersions are the versions routed in each role now, read from one
// routing table; canary is empty when there is none.
func (p *Proxy) RoutedVersions() (stable, canary string) {
	t := p.table.Load()
	return t.stable.up.Version, versionOf(t.canary)
}

// Close stops the work the Proxy does in the background (mirrored copies
// in flight are cut short, list reloads and OnEject calls are waited for)
// and closes the idle connections to upstreams. Requests still served go
// on, but start no more background work.
func (p *Proxy) Close() {
	p.tasks.Close()
	p.CloseIdleConnections()
}

// CloseIdleConnections closes the keep-alive connections to upstreams
// that are not in use, as on shutdown.
func (p *Proxy) CloseIdleConnections() {
	p.transport.CloseIdleConnections()
	t := p.table.Load()
	for _, b := range [...]*backend{t.stable, t.canary} {
		if b != nil {
			b.up.replicas.CloseIdle()
		}
	}
}

// backendFor returns prev when up is the same upstream, and a new backend
// otherwise; the new one keeps prev's counters when only the URL moved.
func (p *Proxy) backendFor(role string, up Upstream, prev *backend) (*backend, error) {
	if up.URL == nil {
		return nil, fmt.Errorf("%s upstream: no URL", role)
	}
	for _, u := range append([]*url.URL{up.URL}, up.Replicas...) {
		if u == nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("%s upstream %q: want an http or https URL with a host", role, u.Redacted())
		}
	}
	up = up.clone()
	if up.Version == "" {
		up.Version = up.URL.String()
	}
	if prev != nil && prev.up.Version == up.Version && sameAddresses(prev.up, up) {
		return prev, nil
	}
	var endpoints []*upstream.Endpoint
	for _, u := range append([]*url.URL{up.URL}, up.Replicas...) {
		endpoints = append(endpoints, upstream.NewEndpoint(u, &p.transportCfg))
	}
	up.replicas = upstream.NewGroup(endpoints)
	return p.newBackend(role, up, prev), nil
}

// newBackend returns the backend serving up, whose replicas are set, in
// role. It keeps prev's counters when prev served the same version.
func (p *Proxy) newBackend(role string, up Upstream, prev *backend) *backend {
	b := &backend{role: role, up: up, version: []byte(up.Version)}
	if prev != nil && prev.up.Version == up.Version {
		b.stats = prev.stats
	} else {
		b.stats = traffic.NewCounters(up.Version, p.epochs.Add(1))
	}
	b.rp = p.reverseProxy(b)
	return b
}

func (p *Proxy) reverseProxy(b *backend) *httputil.ReverseProxy {
	group := b.up.replicas
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			var first uint32
			pr.SetURL(group.Pick(&first, 0).URL())
			setForwardedHeaders(pr.Out.Header, pr.In)
		},
		Transport:     upstream.RetryTransport{Base: p.transport, Retries: p.retries, Group: group},
		FlushInterval: -1, // flush every write, so event streams are not held back
		BufferPool:    buffers{},
		ErrorHandler:  p.answerError,
		ErrorLog:      slog.NewLogLogger(p.log.Handler(), slog.LevelDebug),
	}
	if p.version.name != "" {
		rp.ModifyResponse = func(res *http.Response) error {
			p.version.setStd(res.Header, b)
			return nil
		}
	}
	return rp
}

// clone is a deep copy of u without its live state.
func (u Upstream) clone() Upstream {
	if u.URL != nil { // nil: a version with no ready replica (SetEndpoints)
		c := *u.URL
		u.URL = &c
	}
	if u.Replicas != nil {
		reps := make([]*url.URL, len(u.Replicas))
		for i, r := range u.Replicas {
			rc := *r
			reps[i] = &rc
		}
		u.Replicas = reps
	}
	u.replicas = nil
	return u
}

// sameAddresses reports whether a and b have the same URL and replicas.
func sameAddresses(a, b Upstream) bool {
	if a.URL == nil || a.URL.String() != b.URL.String() || len(a.Replicas) != len(b.Replicas) {
		return false
	}
	for i := range a.Replicas {
		if a.Replicas[i].String() != b.Replicas[i].String() {
			return false
		}
	}
	return true
}

func checkWeight(w v1alpha1.Percent) error {
	if w < 0 || w > v1alpha1.FullWeight {
		return fmt.Errorf("canary weight %s is outside 0%% to 100%%", w)
	}
	return nil
}

// orDefaultInt is n, def when n is zero, and 0 (off) when n is negative.
func orDefaultInt(n, def int) int {
	switch {
	case n == 0:
		return def
	case n < 0:
		return 0
	}
	return n
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}
