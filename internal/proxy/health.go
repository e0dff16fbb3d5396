package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Health check defaults, the same as the rollout spec's.
const (
	DefaultHealthPath      = "/health"
	DefaultHealthInterval  = time.Second
	DefaultHealthTimeout   = time.Second
	DefaultHealthFailures  = 2
	DefaultPassiveFailures = 5
)

// HealthConfig configures a HealthChecker. Zero values take the defaults.
type HealthConfig struct {
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
}

// HealthChecker probes the proxy's current upstreams and follows them as
// SetEndpoints replaces them: a new upstream in a role starts unknown.
type HealthChecker struct {
	p       *Proxy
	cfg     HealthConfig
	log     *slog.Logger
	client  *http.Client
	running atomic.Bool

	results chan probeResult
	passive chan passiveSignal

	mu     sync.Mutex // guards states; only Run's goroutine writes them
	states map[string]*roleState
}

// upstreamID identifies an upstream for health: a new version or a new
// address is a new upstream.
type upstreamID struct{ version, url string }

func idOf(b *backend) upstreamID {
	if b.up.URL == nil { // a version with no ready replica (SetEndpoints)
		return upstreamID{version: b.up.Version}
	}
	return upstreamID{b.up.Version, b.up.URL.String()}
}

type roleState struct {
	id       upstreamID
	known    bool
	healthy  bool
	reason   string
	failures int
	probing  bool
}

type probeResult struct {
	role   string
	id     upstreamID
	ok     bool
	reason string
}

// passiveSink receives transport-error bursts from the request path.
type passiveSink struct {
	threshold int64
	ch        chan<- passiveSignal
}

type passiveSignal struct {
	role   string
	id     upstreamID
	reason string
}

// report never blocks a request: when the checker is behind, a burst is
// dropped, and the next one will be reported.
func (s *passiveSink) report(b *backend, n int64, reason string) {
	select {
	case s.ch <- passiveSignal{b.role, idOf(b), fmt.Sprintf("%d transport errors in a row on live traffic, last: %s", n, reason)}:
	default:
	}
}

// NewHealthChecker returns a checker of p's upstreams; Run starts it.
func NewHealthChecker(p *Proxy, cfg HealthConfig) (*HealthChecker, error) {
	if cfg.Interval < 0 || cfg.Timeout < 0 || cfg.FailureThreshold < 0 {
		return nil, errors.New("health check: interval, timeout and failure threshold cannot be negative")
	}
	if cfg.Path == "" {
		cfg.Path = DefaultHealthPath
	}
	cfg.Interval = orDefault(cfg.Interval, DefaultHealthInterval)
	cfg.Timeout = orDefault(cfg.Timeout, DefaultHealthTimeout)
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
	return &HealthChecker{
		p:   p,
		cfg: cfg,
		log: log,
		client: &http.Client{
			Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 1, IdleConnTimeout: 2 * cfg.Interval},
			// A redirect is an answer: the upstream is up.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		results: make(chan probeResult, 2), // at most one probe per role in flight
		passive: make(chan passiveSignal, 4),
		states:  map[string]*roleState{RoleStable: {}, RoleCanary: {}},
	}, nil
}

// Run probes every interval, and takes passive signals from the proxy,
// until ctx is done; then it waits for its probes to end and returns nil.
// One Run at a time per checker, and per proxy.
func (h *HealthChecker) Run(ctx context.Context) error {
	if !h.running.CompareAndSwap(false, true) {
		return errors.New("health checker is already running")
	}
	defer h.running.Store(false)
	if h.cfg.PassiveFailures > 0 {
		sink := &passiveSink{threshold: int64(h.cfg.PassiveFailures), ch: h.passive}
		if !h.p.passive.CompareAndSwap(nil, sink) {
			return errors.New("the proxy already has a running health checker")
		}
		defer h.p.passive.CompareAndSwap(sink, nil)
	}

	ctx, cancel := context.WithCancel(ctx)
	var probes sync.WaitGroup
	defer func() {
		cancel()
		probes.Wait()
		h.client.CloseIdleConnections()
		h.forgetPending()
	}()

	// The proxy's clock paces the probes; a probe's own timeout is an I/O
	// deadline, on the real clock.
	next := h.p.clock.NewTimer(h.cfg.Interval)
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
func (h *HealthChecker) forgetPending() {
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
func (h *HealthChecker) Health(role string) (healthy bool, reason string, known bool) {
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
func (h *HealthChecker) probeAll(ctx context.Context, probes *sync.WaitGroup) {
	t := h.p.table.Load()
	for _, role := range [...]string{RoleStable, RoleCanary} {
		b := t.backend(role)
		h.mu.Lock()
		st := h.follow(role, b)
		start := b != nil && b.up.URL != nil && !st.probing
		st.probing = st.probing || start
		h.mu.Unlock()
		if start {
			id, target := idOf(b), b.up.URL.JoinPath(h.cfg.Path).String()
			probes.Go(func() { h.results <- h.probe(ctx, role, id, target) })
		}
	}
}

// follow resets role's state when its upstream is no longer the one
// judged. Callers hold h.mu.
func (h *HealthChecker) follow(role string, b *backend) *roleState {
	st := h.states[role]
	var id upstreamID
	if b != nil {
		id = idOf(b)
	}
	if st.id != id {
		*st = roleState{id: id, probing: st.probing}
	}
	return st
}

func (h *HealthChecker) probe(ctx context.Context, role string, id upstreamID, target string) probeResult {
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
func (h *HealthChecker) observe(role string, id upstreamID, ok bool, reason string, now bool) {
	b := h.p.table.Load().backend(role)
	h.mu.Lock()
	st := h.follow(role, b)
	if !now {
		st.probing = false
	}
	if st.id != id || b == nil {
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
	h.log.Info("upstream health changed", "role", role, "version", id.version, "healthy", ok, "reason", reason)
	if h.cfg.OnChange != nil {
		h.cfg.OnChange(role, ok, reason)
	}
}
