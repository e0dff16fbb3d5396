// Package health judges the proxy's upstreams: active health checks
// (Checker probes each role's upstream on an interval and hears of
// bursts of transport errors on live traffic, the passive check) and
// passive outlier detection (Outliers, which tells the proxy when to
// eject its canary). It sees the proxy only through Target, and reports
// through callbacks; it routes nothing itself.
package health

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pipit-dev/pipit/internal/proxy/route"
	"github.com/pipit-dev/pipit/internal/rollout"
)

// Health check defaults, the same as the rollout spec's.
const (
	DefaultHealthPath      = "/health"
	DefaultHealthInterval  = time.Second
	DefaultHealthTimeout   = time.Second
	DefaultHealthFailures  = 2
	DefaultPassiveFailures = 5
)

// Config configures a Checker. Zero values take the defaults.
type Config struct {
	// Path is requested with GET on each upstream; 2xx and 3xx are
	// healthy (redirects are not followed).
	Path string
	// Interval between two probes of an upstream.
	Interval time.Duration
	// Timeout of one probe.
	Timeout time.Duration
	// FailureThreshold is how many probes in a row must fail before an
	// upstream is down. One success makes it healthy again.
	FailureThreshold int
	// PassiveFailures is the passive check: this many transport errors
	// in a row on live traffic to one upstream (refused, reset, timed
	// out; no 5xx, no requests the client abandoned) mark it down at
	// once, without waiting for probes. The next successful probe makes
	// it healthy again, and every further run of this many errors marks
	// it down again. Negative turns the passive check off.
	PassiveFailures int
	// OnChange is called when an upstream's health becomes known or
	// changes, including the first verdict on a new upstream. It runs on
	// the checker's goroutine, one call at a time, as soon as the change
	// is seen; it may call the Proxy (SetWeight) but should not block.
	OnChange func(role string, healthy bool, reason string)
	// Logger receives a line per change; nil discards them.
	Logger *slog.Logger
	// Clock paces the probes; nil is the wall clock. A probe's own
	// timeout is an I/O deadline, on the real clock.
	Clock rollout.Clock
}

// Target is what a Checker needs of the proxy whose upstreams it checks.
type Target interface {
	// Upstream returns the upstream in role now: its identity and the
	// URL to probe under, nil when it has no ready replica; ok is false
	// when the role has no upstream.
	Upstream(role string) (id ID, probe *url.URL, ok bool)
	// AttachPassive makes the proxy report bursts of transport errors
	// to p; false when another Passive is attached already.
	AttachPassive(p *Passive) bool
	// DetachPassive undoes AttachPassive(p), if p is still attached.
	DetachPassive(p *Passive)
}

// roles are the roles checked, in the order they are probed.
var roles = [...]string{route.RoleStable, route.RoleCanary}

// Checker probes the proxy's current upstreams and follows them as they
// are replaced: a new upstream in a role starts unknown.
type Checker struct {
	target  Target
	cfg     Config
	log     *slog.Logger
	client  *http.Client
	running atomic.Bool

	results chan probeResult
	passive chan passiveSignal

	mu     sync.Mutex // guards states; only Run's goroutine writes them
	states map[string]*roleState
}

// ID identifies an upstream for health: a new version or a new address
// is a new upstream.
type ID struct {
	Version string
	// URL is the upstream's first URL; empty when it has no ready
	// replica.
	URL string
}

type roleState struct {
	id       ID
	known    bool
	healthy  bool
	reason   string
	failures int
	probing  bool
}

type probeResult struct {
	role   string
	id     ID
	ok     bool
	reason string
}

// Passive receives bursts of transport errors from the request path
// while a Checker runs: the passive health check.
type Passive struct {
	threshold int64
	ch        chan<- passiveSignal
}

// Threshold is how many transport errors in a row make a burst.
func (s *Passive) Threshold() int64 { return s.threshold }

type passiveSignal struct {
	role   string
	id     ID
	reason string
}

// Report tells of a burst of n transport errors in a row, the last for
// reason, from the upstream id in role. It never blocks a request: when
// the checker is behind, a burst is dropped, and the next one will be
// reported.
func (s *Passive) Report(role string, id ID, n int64, reason string) {
	select {
	case s.ch <- passiveSignal{role, id, fmt.Sprintf("%d transport errors in a row on live traffic, last: %s", n, reason)}:
	default:
	}
}

// NewChecker returns a checker of target's upstreams; Run starts it.
func NewChecker(target Target, cfg Config) (*Checker, error) {
	if cfg.Interval < 0 || cfg.Timeout < 0 || cfg.FailureThreshold < 0 {
		return nil, errors.New("health check: interval, timeout and failure threshold cannot be negative")
	}
	if cfg.Path == "" {
		cfg.Path = DefaultHealthPath
	}
	if cfg.Interval == 0 {
		cfg.Interval = DefaultHealthInterval
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultHealthTimeout
	}
	cfg.Clock = rollout.ClockOrSystem(cfg.Clock)
	if cfg.FailureThreshold == 0 {
		cfg.FailureThreshold = DefaultHealthFailures
	}
	if cfg.PassiveFailures == 0 {
		cfg.PassiveFailures = DefaultPassiveFailures
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Checker{
		target: target,
		cfg:    cfg,
		log:    log,
		client: &http.Client{
			Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 1, IdleConnTimeout: 2 * cfg.Interval},
			// A redirect is an answer: the upstream is up.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		results: make(chan probeResult, 2), // at most one probe per role in flight
		passive: make(chan passiveSignal, 4),
		states:  map[string]*roleState{route.RoleStable: {}, route.RoleCanary: {}},
	}, nil
}

// Run probes every interval, and takes passive signals from the proxy,
// until ctx is done; then it waits for its probes to end and returns nil.
// One Run at a time per checker, and per proxy.
func (h *Checker) Run(ctx context.Context) error {
	if !h.running.CompareAndSwap(false, true) {
		return errors.New("health checker is already running")
	}
	defer h.running.Store(false)
	if h.cfg.PassiveFailures > 0 {
		sink := &Passive{threshold: int64(h.cfg.PassiveFailures), ch: h.passive}
		if !h.target.AttachPassive(sink) {
			return errors.New("the proxy already has a running health checker")
		}
		defer h.target.DetachPassive(sink)
	}

	ctx, cancel := context.WithCancel(ctx)
	var probes sync.WaitGroup
	defer func() {
		cancel()
		probes.Wait()
		h.client.CloseIdleConnections()
		h.forgetPending()
	}()

	// The clock paces the probes; a probe's own timeout is an I/O
	// deadline, on the real clock.
	next := h.cfg.Clock.NewTimer(h.cfg.Interval)
	defer next.Stop()
	h.probeAll(ctx, &probes)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-next.C():
			next.Reset(h.cfg.Interval)
			h.probeAll(ctx, &probes)
		case r := <-h.results:
			h.observe(r.role, r.id, r.ok, r.reason, false)
		case s := <-h.passive:
			h.observe(s.role, s.id, false, s.reason, true)
		}
	}
}

// forgetPending drops the results of probes cut short by the stop, so a
// later Run does not count them as failures.
func (h *Checker) forgetPending() {
	for {
		select {
		case <-h.results:
		case <-h.passive:
		default:
			h.mu.Lock()
			for _, st := range h.states {
				st.probing = false
			}
			h.mu.Unlock()
			return
		}
	}
}

// Health returns the state of the upstream in role. known is false until
// the first verdict on the current upstream, and when the role has none.
func (h *Checker) Health(role string) (healthy bool, reason string, known bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	st, ok := h.states[role]
	if !ok {
		return false, "", false
	}
	return st.healthy, st.reason, st.known
}

// probeAll starts a probe of each current upstream not already being
// probed; a slow upstream never holds up the other.
func (h *Checker) probeAll(ctx context.Context, probes *sync.WaitGroup) {
	for _, role := range roles {
		id, probe, ok := h.target.Upstream(role)
		h.mu.Lock()
		st := h.follow(role, id, ok)
		start := ok && probe != nil && !st.probing
		st.probing = st.probing || start
		h.mu.Unlock()
		if start {
			target := probe.JoinPath(h.cfg.Path).String()
			probes.Go(func() { h.results <- h.probe(ctx, role, id, target) })
		}
	}
}

// follow resets role's state when its upstream (id, when the role has
// one) is no longer the one judged. Callers hold h.mu.
func (h *Checker) follow(role string, id ID, ok bool) *roleState {
	st := h.states[role]
	if !ok {
		id = ID{}
	}
	if st.id != id {
		*st = roleState{id: id, probing: st.probing}
	}
	return st
}

func (h *Checker) probe(ctx context.Context, role string, id ID, target string) probeResult {
	ctx, cancel := context.WithTimeout(ctx, h.cfg.Timeout)
	defer cancel()
	res := probeResult{role: role, id: id}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		res.reason = err.Error()
		return res
	}
	resp, err := h.client.Do(req)
	if err != nil {
		res.reason = fmt.Sprintf("probe failed: %v", err)
		return res
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // drain so the connection is reused
	resp.Body.Close()
	res.ok = resp.StatusCode >= 200 && resp.StatusCode < 400
	res.reason = fmt.Sprintf("GET %s answered %s", target, resp.Status)
	return res
}

// observe applies one probe result or passive signal (now: mark down at
// once) to the upstream it was about, and calls OnChange on a transition.
func (h *Checker) observe(role string, id ID, ok bool, reason string, now bool) {
	current, _, present := h.target.Upstream(role)
	h.mu.Lock()
	st := h.follow(role, current, present)
	if !now {
		st.probing = false
	}
	if st.id != id || !present {
		h.mu.Unlock()
		return // about an upstream that has since been replaced
	}
	changed := false
	if ok {
		st.failures = 0
		changed = !st.known || !st.healthy
		st.known, st.healthy, st.reason = true, true, reason
	} else {
		st.failures++
		if now || st.failures >= h.cfg.FailureThreshold {
			if !now && st.failures > 1 {
				reason = fmt.Sprintf("%s (%d failures in a row)", reason, st.failures)
			}
			changed = !st.known || st.healthy
			st.known, st.healthy, st.reason = true, false, reason
		}
	}
	h.mu.Unlock()
	if !changed {
		return
	}
	h.log.Info("upstream health changed", "role", role, "version", id.Version, "healthy", ok, "reason", reason)
	if h.cfg.OnChange != nil {
		h.cfg.OnChange(role, ok, reason)
	}
}
