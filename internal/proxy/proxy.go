// Package proxy is pipit's built-in data plane: an HTTP reverse proxy that
// splits traffic between a stable and a canary upstream by weight, measures
// each version, and probes both for health.
//
// It knows nothing of rollouts. The daemon tells it the upstreams and the
// weight (SetUpstreams, SetWeight), reads its measurements (Stats) and
// listens to its health checker (HealthChecker.OnChange).
package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pipit-dev/pipit/api/v1alpha1"
)

// Roles of the two upstreams. Stats, health and metrics are keyed by role.
const (
	RoleStable = "stable"
	RoleCanary = "canary"
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
)

// Upstream is one version of the service.
type Upstream struct {
	// Version labels the upstream in stats, metrics and the version
	// header; it defaults to the URL.
	Version string
	// URL is the base URL requests are sent to: http or https with a host.
	URL *url.URL
}

// Config configures a Proxy. Zero durations and sizes take the defaults
// above.
type Config struct {
	// Stable receives all traffic that does not go to the canary.
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

	// Logger receives debug logs of upstream errors; nil uses
	// slog.Default().
	Logger *slog.Logger
}

// Proxy is an http.Handler that sends each request to the stable or the
// canary upstream. Its routing table is an immutable value behind an atomic
// pointer: a request reads it once, so changing the weight or the
// upstreams never disturbs a request in flight.
type Proxy struct {
	transport     *http.Transport
	versionHeader string
	log           *slog.Logger

	table atomic.Pointer[table]
	// mu serialises writers of table (SetWeight, SetUpstreams) so that
	// one never loses the other's change; readers do not take it.
	mu sync.Mutex
	// epochs numbers counter sets, so Stats.Since can tell a new
	// version's counters from the old ones.
	epochs atomic.Uint64
	// passive is where bursts of transport errors are reported while a
	// HealthChecker runs; nil otherwise.
	passive atomic.Pointer[passiveSink]
}

// New builds a Proxy from cfg.
func New(cfg Config) (*Proxy, error) {
	if err := checkWeight(cfg.Weight); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	dialer := &net.Dialer{Timeout: orDefault(cfg.DialTimeout, DefaultDialTimeout), KeepAlive: 30 * time.Second}
	maxIdle := cfg.MaxIdleConnsPerHost
	if maxIdle <= 0 {
		maxIdle = DefaultMaxIdleConnsPerHost
	}
	p := &Proxy{
		transport: &http.Transport{
			Proxy:                 nil, // upstreams are reached directly, never through HTTP_PROXY
			DialContext:           dialer.DialContext,
			ForceAttemptHTTP2:     true,
			MaxIdleConnsPerHost:   maxIdle,
			IdleConnTimeout:       orDefault(cfg.IdleConnTimeout, DefaultIdleConnTimeout),
			ResponseHeaderTimeout: orDefault(cfg.ResponseHeaderTimeout, DefaultResponseHeaderTimeout),
			TLSHandshakeTimeout:   10 * time.Second,
			ExpectContinueTimeout: time.Second,
			// Pass the client's Accept-Encoding through untouched instead
			// of asking for gzip and decompressing on the client's behalf.
			DisableCompression: true,
		},
		versionHeader: cfg.VersionHeader,
		log:           log,
	}
	p.table.Store(&table{weight: cfg.Weight})
	if err := p.SetUpstreams(cfg.Stable, cfg.Canary); err != nil {
		return nil, err
	}
	return p, nil
}

// ServeHTTP forwards r to the upstream chosen by the routing table and
// records the outcome for that version.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b := p.table.Load().route(r)
	rec := newRecorder(w, b)
	// A deferred call, not a plain one: ReverseProxy panics with
	// http.ErrAbortHandler when an upstream breaks off mid-body, and that
	// request must still be counted (as a transport error).
	defer p.finish(rec, r, time.Now())
	b.rp.ServeHTTP(rec, r)
	rec.completed = true
}

// finish records one request and reports transport-error bursts.
func (p *Proxy) finish(rec *recorder, r *http.Request, start time.Time) {
	defer rec.release()
	b := rec.b
	failed := rec.err != nil || !rec.completed
	if failed && r.Context().Err() != nil {
		// The client went away: that says nothing about the upstream,
		// so it is neither counted nor held against the version.
		return
	}
	class := classError
	if !failed {
		class = classOf(rec.code)
	}
	b.stats.record(class, time.Since(start))
	if !failed {
		if b.consecutiveErrors.Load() != 0 {
			b.consecutiveErrors.Store(0)
		}
		return
	}
	n := b.consecutiveErrors.Add(1)
	sink := p.passive.Load()
	// Swapping the counter back to zero lets exactly one request report
	// each run of Threshold errors, and the next run report again.
	if sink != nil && n >= sink.threshold && b.consecutiveErrors.CompareAndSwap(n, 0) {
		reason := "the response broke off"
		if rec.err != nil {
			reason = rec.err.Error()
		}
		sink.report(b, n, reason)
	}
}

// answerError is ReverseProxy's ErrorHandler: the upstream gave no usable
// answer, so the proxy answers 504 for a timeout and 502 otherwise.
func (p *Proxy) answerError(w http.ResponseWriter, r *http.Request, err error) {
	rec := w.(*recorder) // ServeHTTP hands every ReverseProxy a *recorder
	rec.err = err
	if r.Context().Err() != nil || rec.code != 0 {
		return // nobody is listening, or the answer has already begun
	}
	code := http.StatusBadGateway
	if isTimeout(err) {
		code = http.StatusGatewayTimeout
	}
	if p.versionHeader != "" {
		w.Header().Set(p.versionHeader, rec.b.up.Version)
	}
	w.WriteHeader(code)
	p.log.Debug("upstream error", "role", rec.b.role, "version", rec.b.up.Version, "status", code, "err", err)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
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
	t.weight = w
	p.table.Store(&t)
	return nil
}

// Weight is the canary weight last set. With no canary upstream all
// traffic goes to stable whatever it says.
func (p *Proxy) Weight() v1alpha1.Percent { return p.table.Load().weight }

// SetUpstreams replaces the upstreams; canary may be nil. An upstream
// whose Version and URL are unchanged keeps its connections and counters.
// A role whose Version changes starts new counters (see Stats). Requests
// already routed finish against the upstream they were sent to.
func (p *Proxy) SetUpstreams(stable Upstream, canary *Upstream) error {
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
	p.table.Store(&table{weight: old.weight, stable: sb, canary: cb})
	return nil
}

// Upstreams returns copies of the current upstreams; canary is nil when
// there is none.
func (p *Proxy) Upstreams() (stable Upstream, canary *Upstream) {
	t := p.table.Load()
	stable = t.stable.up.clone()
	if t.canary != nil {
		c := t.canary.up.clone()
		canary = &c
	}
	return stable, canary
}

// CloseIdleConnections closes the keep-alive connections to upstreams
// that are not in use, as on shutdown.
func (p *Proxy) CloseIdleConnections() { p.transport.CloseIdleConnections() }

// backendFor returns prev when up is the same upstream, and a new backend
// otherwise; the new one keeps prev's counters when only the URL moved.
func (p *Proxy) backendFor(role string, up Upstream, prev *backend) (*backend, error) {
	if up.URL == nil {
		return nil, fmt.Errorf("%s upstream: no URL", role)
	}
	if (up.URL.Scheme != "http" && up.URL.Scheme != "https") || up.URL.Host == "" {
		return nil, fmt.Errorf("%s upstream %q: want an http or https URL with a host", role, up.URL.Redacted())
	}
	up = up.clone()
	if up.Version == "" {
		up.Version = up.URL.String()
	}
	if prev != nil && prev.up.Version == up.Version && prev.up.URL.String() == up.URL.String() {
		return prev, nil
	}
	b := &backend{role: role, up: up}
	if prev != nil && prev.up.Version == up.Version {
		b.stats = prev.stats
	} else {
		b.stats = newCounters(up.Version, p.epochs.Add(1))
	}
	b.rp = p.reverseProxy(b)
	return b, nil
}

func (p *Proxy) reverseProxy(b *backend) *httputil.ReverseProxy {
	target := b.up.URL
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			// Keep the chain of proxies in front of this one and append
			// the client, as nginx's $proxy_add_x_forwarded_for does;
			// X-Forwarded-Host and -Proto describe this hop only.
			pr.Out.Header["X-Forwarded-For"] = pr.In.Header["X-Forwarded-For"]
			pr.SetXForwarded()
		},
		Transport:     p.transport,
		FlushInterval: -1, // flush every write, so event streams are not held back
		BufferPool:    buffers{},
		ErrorHandler:  p.answerError,
		ErrorLog:      slog.NewLogLogger(p.log.Handler(), slog.LevelDebug),
	}
	if name, version := p.versionHeader, b.up.Version; name != "" {
		rp.ModifyResponse = func(res *http.Response) error {
			res.Header.Set(name, version)
			return nil
		}
	}
	return rp
}

func (u Upstream) clone() Upstream {
	c := *u.URL
	u.URL = &c
	return u
}

func checkWeight(w v1alpha1.Percent) error {
	if w < 0 || w > v1alpha1.FullWeight {
		return fmt.Errorf("canary weight %s is outside 0%% to 100%%", w)
	}
	return nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}
