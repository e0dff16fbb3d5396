// Package health judges the proxy's upstreams: active health checks
// (Checker probes each machine of each role's upstream on an interval,
// takes a failing machine out of rotation, and hears of bursts of
// transport errors on live traffic, the passive check) and
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
	"slices"
	"strings"
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
	// Path is requested with GET on each machine of each upstream; 2xx
	// and 3xx are healthy (redirects are not followed).
	Path string
	// Interval between two probes of a machine.
	Interval time.Duration
	// Timeout of one probe.
	Timeout time.Duration
	// FailureThreshold is how many probes in a row must fail before a
	// machine is down, and out of rotation. One success makes it healthy
	// again.
	FailureThreshold int
	// PassiveFailures is the passive check: this many transport errors
	// in a row on live traffic to one upstream (refused, reset, timed
	// out; no 5xx, no requests the client abandoned) mark it down at
	// once, without waiting for probes. The next successful probe makes
	// it healthy again, and every further run of this many errors marks
	// it down again. Negative turns the passive check off.
	PassiveFailures int
	// OnChange is called when an upstream's health becomes known or
	// changes, including the first verdict on a new upstream, and when
	// a machine goes out of rotation or comes back. It runs on
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
	// Upstream returns the upstream in role now: its version and the
	// base URLs of its machines (none when it has no ready replica); ok
	// is false when the role has no upstream.
	Upstream(role string) (version string, machines []*url.URL, ok bool)
	// SetOutOfRotation takes the machines listed in out (by base URL)
	// out of the rotation of role, and puts its other machines back,
	// when role still serves version; requests in flight are not
	// dropped. With every machine out, all of them stay in rotation.
	SetOutOfRotation(role, version string, out []string)
	// AttachPassive makes the proxy report bursts of transport errors
	// to p; false when another Passive is attached already.
	AttachPassive(p *Passive) bool
	// DetachPassive undoes AttachPassive(p), if p is still attached.
	DetachPassive(p *Passive)
}

// roles are the roles checked, in the order they are probed.
var roles = [...]string{route.RoleStable, route.RoleCanary}

// Checker probes every machine of the proxy's current upstreams and
// follows them as they are replaced: a new version in a role, or a new
// machine of it, starts unknown. A role is healthy while one of its
// machines is, and down once all of them are.
type Checker struct {
	target  Target
	cfg     Config
	log     *slog.Logger
	client  *http.Client
	running atomic.Bool

	results chan probeResult
	passive chan passiveSignal

	mu     sync.Mutex // guards states; only Run's goroutine changes them
	states map[string]*roleState
}

// roleState is what the checker knows of the upstream in one role.
type roleState struct {
	version string
	present bool
	// machines are the upstream's machines, in its order.
	machines []*machineState
	// passive is why a burst of transport errors marked the version down;
	// empty when none did since the last successful probe.
	passive string
	// known, healthy and reason are the role's verdict (see verdict),
	// and out the machines out of rotation, as last reported.
	known, healthy bool
	reason         string
	out            []string
	// probing are the machines with a probe in flight, by URL; kept when
	// the upstream is replaced, so a machine never has two.
	probing map[string]bool
}

// machineState is what the checker knows of one machine.
type machineState struct {
	url            string
	known, healthy bool
	reason         string
	failures       int
}

type probeResult struct {
	role, version, url string
	ok                 bool
	reason             string
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
	role, version, reason string
}

// Report tells of a burst of n transport errors in a row, the last for
// reason, from version in role. It marks the version down, not one of
// its machines: the proxy counts errors per version. It never blocks a
// request: when the checker is behind, a burst is dropped, and the next
// one will be reported.
func (s *Passive) Report(role, version string, n int64, reason string) {
	select {
	case s.ch <- passiveSignal{role, version, fmt.Sprintf("%d transport errors in a row on live traffic, last: %s", n, reason)}:
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
		results: make(chan probeResult, 2*len(roles)),
		passive: make(chan passiveSignal, 4),
		states: map[string]*roleState{
			route.RoleStable: {probing: map[string]bool{}}, route.RoleCanary: {probing: map[string]bool{}},
		},
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
			h.observe(r)
		case s := <-h.passive:
			h.markPassive(s)
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
				clear(st.probing)
			}
			h.mu.Unlock()
			return
		}
	}
}

// Health returns the verdict on the upstream in role: healthy while one
// of its machines is, with a reason naming the machines out of rotation.
// known is false until the first verdict on the current upstream, and
// when the role has none.
func (h *Checker) Health(role string) (healthy bool, reason string, known bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	st, ok := h.states[role]
	if !ok {
		return false, "", false
	}
	return st.healthy, st.reason, st.known
}

// probeAll starts a probe of each machine of each current upstream not
// already being probed; a slow machine never holds up the others.
func (h *Checker) probeAll(ctx context.Context, probes *sync.WaitGroup) {
	for _, role := range roles {
		version, machines, ok := h.target.Upstream(role)
		h.mu.Lock()
		st := h.follow(role, version, machines, ok)
		var start []*url.URL
		for i, m := range st.machines {
			if !st.probing[m.url] {
				st.probing[m.url] = true
				start = append(start, machines[i])
			}
		}
		h.mu.Unlock()
		for _, base := range start {
			target := base.JoinPath(h.cfg.Path).String()
			probes.Go(func() {
				r := h.probe(ctx, target)
				r.role, r.version, r.url = role, version, base.String()
				select {
				case h.results <- r:
				case <-ctx.Done(): // Run stopped reading; forgetPending clears the flag
				}
			})
		}
	}
}

// follow brings role's state to the upstream in it now (version with
// machines, when ok): a new version starts afresh, a machine that left is
// forgotten and a new one starts unknown. Callers hold h.mu.
func (h *Checker) follow(role, version string, machines []*url.URL, ok bool) *roleState {
	st := h.states[role]
	if !ok {
		version, machines = "", nil
	}
	if st.version != version || st.present != ok {
		*st = roleState{version: version, present: ok, probing: st.probing}
	}
	next := make([]*machineState, len(machines))
	for i, u := range machines {
		us := u.String()
		if j := slices.IndexFunc(st.machines, func(m *machineState) bool { return m.url == us }); j >= 0 {
			next[i] = st.machines[j]
		} else {
			next[i] = &machineState{url: us}
		}
	}
	st.machines = next
	return st
}

// probe requests target, a machine's health path, once.
func (h *Checker) probe(ctx context.Context, target string) probeResult {
	ctx, cancel := context.WithTimeout(ctx, h.cfg.Timeout)
	defer cancel()
	var res probeResult
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

// observe applies one probe result to the machine it was about, unless
// the machine has since left its role's upstream.
func (h *Checker) observe(r probeResult) {
	version, machines, present := h.target.Upstream(r.role)
	h.mu.Lock()
	st := h.follow(r.role, version, machines, present)
	delete(st.probing, r.url)
	i := slices.IndexFunc(st.machines, func(m *machineState) bool { return m.url == r.url })
	if !present || st.version != r.version || i < 0 {
		h.mu.Unlock()
		return
	}
	m := st.machines[i]
	if r.ok {
		m.failures = 0
		m.known, m.healthy, m.reason = true, true, r.reason
		st.passive = "" // one successful probe clears a burst's verdict
	} else {
		m.failures++
		if m.failures >= h.cfg.FailureThreshold {
			if m.failures > 1 {
				r.reason = fmt.Sprintf("%s (%d failures in a row)", r.reason, m.failures)
			}
			m.known, m.healthy, m.reason = true, false, r.reason
		}
	}
	h.settle(r.role, st)
}

// markPassive marks the version a burst of transport errors came from
// down at once, without waiting for probes.
func (h *Checker) markPassive(s passiveSignal) {
	version, machines, present := h.target.Upstream(s.role)
	h.mu.Lock()
	st := h.follow(s.role, version, machines, present)
	if !present || st.version != s.version {
		h.mu.Unlock()
		return
	}
	st.passive = s.reason
	h.settle(s.role, st)
}

// settle judges role again from st and unlocks h.mu, which the caller
// holds; then it tells the target of a change of the machines out of
// rotation, and OnChange of a change of verdict or of those machines.
func (h *Checker) settle(role string, st *roleState) {
	known, healthy, reason, out := st.verdict()
	moved := !slices.Equal(out, st.out)
	changed := known && (!st.known || healthy != st.healthy || moved)
	st.known, st.healthy, st.reason, st.out = known, healthy, reason, out
	version := st.version
	h.mu.Unlock()
	if moved {
		h.log.Info("machines out of rotation changed", "role", role, "version", version, "out", out)
		h.target.SetOutOfRotation(role, version, out)
	}
	if !changed {
		return
	}
	h.log.Info("upstream health changed", "role", role, "version", version, "healthy", healthy, "reason", reason)
	if h.cfg.OnChange != nil {
		h.cfg.OnChange(role, healthy, reason)
	}
}

// verdict judges the upstream from its machines: healthy while one is,
// down once every one is known down or a burst of transport errors
// marked the version down, unknown otherwise. out are the machines known
// down, to be taken out of rotation.
func (st *roleState) verdict() (known, healthy bool, reason string, out []string) {
	var up, down []*machineState
	for _, m := range st.machines {
		switch {
		case m.known && m.healthy:
			up = append(up, m)
		case m.known:
			down = append(down, m)
			out = append(out, m.url)
		}
	}
	n := len(st.machines)
	switch {
	case st.passive != "":
		return true, false, st.passive, out
	case n == 1 && st.machines[0].known: // one machine: its own words
		return true, st.machines[0].healthy, st.machines[0].reason, out
	case len(up) > 0 && len(down) == 0: // those not probed yet are in rotation too
		return true, true, fmt.Sprintf("all %d machines in rotation", n), out
	case len(up) > 0:
		return true, true, fmt.Sprintf("%d of %d machines in rotation; out of rotation: %s", n-len(down), n, describe(down)), out
	case n > 0 && len(down) == n:
		return true, false, fmt.Sprintf("all %d machines down: %s", n, describe(down)), out
	}
	return false, false, "", out
}

// describe names machines with the reason of each.
func describe(machines []*machineState) string {
	parts := make([]string, len(machines))
	for i, m := range machines {
		parts[i] = fmt.Sprintf("%s (%s)", m.url, m.reason)
	}
	return strings.Join(parts, ", ")
}
