package standalone

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/controlapi"
	"github.com/pipit-dev/pipit/internal/engine"
	"github.com/pipit-dev/pipit/internal/metric"
	"github.com/pipit-dev/pipit/internal/notify"
	"github.com/pipit-dev/pipit/internal/proxy"
	"github.com/pipit-dev/pipit/internal/proxy/health"
	"github.com/pipit-dev/pipit/internal/proxy/route"
	"github.com/pipit-dev/pipit/internal/rollout"
	"github.com/pipit-dev/pipit/internal/router"
	"github.com/pipit-dev/pipit/internal/runtime"
	"github.com/pipit-dev/pipit/internal/spec"
	"github.com/pipit-dev/pipit/internal/store"
	"github.com/pipit-dev/pipit/internal/target"
	"github.com/pipit-dev/pipit/internal/traffic"
)

// pollInterval bounds the time between two ticks of a rollout when nothing
// wakes it earlier: a safety net, as health changes and commands wake the
// loop at once and timed steps schedule their own wake-up.
const pollInterval = time.Second

// minWake is the shortest wait of the loop, so that a due time just missed
// does not make it spin.
const minWake = 5 * time.Millisecond

// managed is one rollout run by the daemon: its proxy, its target (fixed
// URLs, or processes it runs), health checks, meter and the runner loop.
type managed struct {
	name    string
	rollout *v1alpha1.Rollout
	plan    spec.Plan
	store   rolloutStore
	proxy   *proxy.Proxy
	// checker probes URL upstreams; nil for processes, which the process
	// target probes replica by replica.
	checker *health.Checker
	// process runs the versions of a process rollout; nil for URLs.
	process *target.Process
	// health reports a role's health for views: healthy, why not, known.
	health   func(role string) (healthy bool, reason string, known bool)
	builtin  *metric.Builtin
	meter    *metric.Set
	runner   *runtime.Runner
	addr     string // where its proxy listens
	hooks    *runtime.Hooks
	notifier *notify.Dispatcher
	log      *slog.Logger
	clock    rollout.Clock
	wake     chan struct{}

	// answers collects the engine's answers to commands during a tick; the
	// loop delivers them once the tick has settled. Loop goroutine only.
	answers map[int64]error

	mu      sync.Mutex
	status  v1alpha1.RolloutStatus // the last status saved, for readers
	waiters map[int64]chan error
}

// env is what the rollouts of a daemon share.
type env struct {
	db       *store.Store
	stateDir string
	clock    rollout.Clock
	log      *slog.Logger
	// cookieKeys sign every proxy's sticky cookies.
	cookieKeys route.CookieKeys
	// inherit holds the output pipes of the processes to adopt, which
	// each rollout's process target takes.
	inherit *Inheritance
}

// newManaged loads or creates the rollout's state and builds its data
// plane, applying the saved weight before any traffic is accepted. For a
// process rollout it starts the stable version's processes, and stops
// them again if it fails after that. runCtx bounds the background work
// (hooks, notifications) of the rollout.
func newManaged(ctx, runCtx context.Context, e env, r *v1alpha1.Rollout, raw []byte) (m *managed, err error) {
	plan, err := spec.Resolve(&r.Spec)
	if err != nil {
		return nil, err
	}
	log, clock := e.log, e.clock
	m = &managed{
		name: r.Name, rollout: r, plan: plan, log: log.With("rollout", r.Name), clock: clock,
		store:   rolloutStore{db: e.db, name: r.Name, spec: raw},
		wake:    make(chan struct{}, 1),
		waiters: map[int64]chan error{},
		answers: map[int64]error{},
	}
	status, err := m.loadStatus(ctx)
	if err != nil {
		return nil, err
	}
	m.status = status
	proxyCfg := proxy.Config{Name: r.Name, Traffic: r.Spec.Service.Traffic,
		VersionHeader: versionHeader(r.Spec.Service), Logger: log, CookieKeys: e.cookieKeys, Clock: clock,
		// An ejection is acted on at once: the loop wakes, sees the canary
		// down and rolls back (or waits for a person in hybrid mode).
		OnEject: func(string, string) { m.poke() }}
	tgt, err := m.newTarget(ctx, proxyCfg, e)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil && m.process != nil {
			m.shutdownProcesses(m.process)
		}
	}()
	m.builtin = metric.NewBuiltin(m.proxy, clock)
	setCfg := metric.SetConfig{Rollout: r.Name, Namespace: r.Namespace, Plan: plan.Analysis, Builtin: m.builtin,
		Env: metric.Env{Clock: clock, Log: log}}
	if m.process != nil {
		setCfg.Usage = m.process
	}
	if m.meter, err = metric.NewSet(setCfg); err != nil {
		return nil, err
	}
	notifiers, err := notify.Build(r.Spec.Notifications)
	if err != nil {
		return nil, err
	}
	m.notifier = notify.NewDispatcher(notifiers, notify.Options{Clock: clock, Logger: log})
	m.hooks = runtime.NewHooks(runCtx, r.Name, r.Namespace, plan, clock, log)
	m.runner = &runtime.Runner{
		Name: r.Name, Plan: plan, Status: status, Store: m.store, Target: tgt,
		Router: router.Proxy{P: m.proxy}, Meter: m.meter, Hooks: m.hooks, Clock: clock, Log: log,
		OnCommand: m.commandDone, OnEvents: m.notify,
	}
	if err := m.runner.Converge(ctx); err != nil {
		return nil, fmt.Errorf("rollout %s: applying the saved state: %w", r.Name, err)
	}
	return m, m.deployFromFile(ctx)
}

// newTarget builds the proxy from cfg and the target that steers it: the
// process target when the versions are processes (it probes its replicas
// itself), else the static target with the proxy's health checker.
func (m *managed) newTarget(ctx context.Context, cfg proxy.Config, e env) (rollout.Target, error) {
	var err error
	if m.rollout.Spec.Service.Stable.Process != nil {
		// No replica of the stable is ready before its processes start.
		cfg.Stable = proxy.Upstream{Version: m.status.Stable.Version}
		if m.proxy, err = proxy.New(cfg); err != nil {
			return nil, err
		}
		t, err := m.newProcessTarget(ctx, e.stateDir, e.inherit.takePipes(m.name))
		if err != nil {
			return nil, err
		}
		m.process, m.health = t.Process, processHealth(t.Process)
		return t, nil
	}
	u, err := target.URLOf(*m.status.Stable)
	if err != nil {
		return nil, err
	}
	cfg.Stable = proxy.Upstream{Version: m.status.Stable.Version, URL: u}
	if m.proxy, err = proxy.New(cfg); err != nil {
		return nil, err
	}
	if m.checker, err = proxy.NewHealthChecker(m.proxy, healthConfig(m.rollout.Spec.Service.HealthCheck, m.poke, m.log)); err != nil {
		return nil, err
	}
	m.health = m.checker.Health
	return &target.Static{Proxy: m.proxy, Health: m.checker}, nil
}

// loadStatus returns the saved status, or saves a first one with the
// file's stable version. A saved status wins over the file: after a
// promotion the stable version is the promoted one, whatever the file says.
func (m *managed) loadStatus(ctx context.Context) (v1alpha1.RolloutStatus, error) {
	rec, err := m.store.db.Rollout(ctx, m.name)
	if err == nil && rec.Status.Stable != nil {
		return rec.Status, nil
	}
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return v1alpha1.RolloutStatus{}, err
	}
	// The file's stable version is installed as a first version always
	// is: the engine decides it, as it does on Kubernetes.
	res := engine.Step(m.plan, v1alpha1.RolloutStatus{}, engine.Input{Now: m.clock.Now(), Commands: []rollout.Command{{
		Kind: rollout.CommandDeploy, Canary: versionOf(m.rollout.Spec.Service.Stable), Actor: "pipit", Reason: "rollout file",
	}}})
	if err := res.Consumed[0]; err != nil {
		return v1alpha1.RolloutStatus{}, fmt.Errorf("rollout %s: installing the stable version: %w", m.name, err)
	}
	return res.Status, m.store.Save(ctx, res.Status, res.Events, nil)
}

// deployFromFile queues a deploy of the file's canary when it names a
// version pipit has not seen yet, so editing the file and restarting rolls
// the new version out.
func (m *managed) deployFromFile(ctx context.Context) error {
	c := m.rollout.Spec.Service.Canary
	if c == nil {
		return nil
	}
	v := versionOf(*c)
	st := m.status
	if (st.Stable != nil && st.Stable.Version == v.Version) || (st.Canary != nil && st.Canary.Version == v.Version) {
		return nil
	}
	_, err := m.store.enqueue(ctx, deployCommand(*v, "rollout file"))
	return err
}

// notify sends the events to the rollout's notifiers, never blocking.
func (m *managed) notify(st v1alpha1.RolloutStatus, events []v1alpha1.Event) {
	m.notifier.SendAll(m.name, st, events)
}

// run serves the proxy and drives the rollout until ctx is done.
func (m *managed) run(ctx context.Context, wg *sync.WaitGroup) {
	wg.Add(2)
	go func() {
		defer wg.Done()
		m.notifier.Run(ctx)
	}()
	if m.checker != nil {
		wg.Go(func() {
			if err := m.checker.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
				m.log.Error("health checks stopped", "err", err)
			}
		})
	}
	go func() {
		defer wg.Done()
		m.loop(ctx)
	}()
}

// loop ticks the runner when woken, when the engine asked to be, and
// every pollInterval otherwise, waiting on the daemon's clock.
func (m *managed) loop(ctx context.Context) {
	timer := m.clock.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-m.wake:
		case <-timer.C():
		}
		next, ok, err := m.runner.Tick(ctx)
		if err != nil && ctx.Err() == nil {
			m.log.Warn("tick failed", "err", err)
		}
		m.publish()
		wait := pollInterval
		if until := next.Sub(m.clock.Now()); ok && until < wait {
			wait = max(until, minWake)
		}
		timer.Reset(wait)
	}
}

// poke wakes the loop; it never blocks.
func (m *managed) poke() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// commandDone notes the engine's answer to a command; publish hands it to
// the submitter once the tick has settled.
func (m *managed) commandDone(id int64, err error) { m.answers[id] = err }

// publish makes the runner's status visible to readers, then answers the
// commands consumed in the tick, so a submitter sees the settled result.
func (m *managed) publish() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.status = m.runner.Status
	for id, err := range m.answers {
		if ch := m.waiters[id]; ch != nil {
			ch <- err
			delete(m.waiters, id)
		}
		delete(m.answers, id)
	}
}

func (m *managed) snapshot() v1alpha1.RolloutStatus {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.status
}

// view renders the rollout for the control API.
func (m *managed) view() controlapi.RolloutView {
	v := controlapi.NewView(m.name, m.plan, m.snapshot())
	v.Listen = m.addr
	v.Live = m.live()
	return v
}

// live summarises the proxy's measurements since the last check.
func (m *managed) live() *controlapi.LiveMetrics {
	w, since := m.builtin.Window()
	l := &controlapi.LiveMetrics{Since: since, Stable: m.versionMetrics("stable", w.Stable)}
	if w.Canary.Version != "" {
		c := m.versionMetrics("canary", w.Canary)
		l.Canary = &c
	}
	return l
}

func (m *managed) versionMetrics(role string, s traffic.VersionStats) controlapi.VersionMetrics {
	vm := controlapi.VersionMetrics{Version: s.Version, Requests: s.Requests}
	if healthy, reason, known := m.health(role); known {
		vm.Healthy, vm.HealthReason = &healthy, reason
	}
	opt := func(v float64, ok bool) *float64 {
		if !ok {
			return nil
		}
		return &v
	}
	vm.SuccessRate = opt(s.SuccessRate())
	vm.ErrorRate = opt(s.ErrorRate())
	vm.LatencyMean = opt(s.Mean())
	vm.LatencyP50 = opt(s.Quantile(0.50))
	vm.LatencyP95 = opt(s.Quantile(0.95))
	vm.LatencyP99 = opt(s.Quantile(0.99))
	return vm
}

func healthConfig(hc *v1alpha1.HealthCheck, onChange func(), log *slog.Logger) health.Config {
	cfg := health.Config{
		Path: spec.DefaultHealthPath, Interval: spec.DefaultHealthInterval, Timeout: spec.DefaultHealthTimeout,
		FailureThreshold: spec.DefaultHealthFailures, Logger: log,
		OnChange: func(string, bool, string) { onChange() },
	}
	if hc == nil {
		return cfg
	}
	if hc.Path != "" {
		cfg.Path = hc.Path
	}
	if hc.Interval != nil {
		cfg.Interval = hc.Interval.Duration
	}
	if hc.Timeout != nil {
		cfg.Timeout = hc.Timeout.Duration
	}
	if hc.FailureThreshold > 0 {
		cfg.FailureThreshold = int(hc.FailureThreshold)
	}
	return cfg
}

// versionOf names an upstream's version, defaulting to its URL.
func versionOf(u v1alpha1.Upstream) *v1alpha1.VersionRef {
	v := u.Version
	if v == "" {
		v = u.URL
	}
	return &v1alpha1.VersionRef{Version: v, URL: u.URL, Process: u.Process}
}
