package standalone

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/controlapi"
	"github.com/pipit-dev/pipit/internal/engine"
	"github.com/pipit-dev/pipit/internal/flag"
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
	"github.com/pipit-dev/pipit/internal/telemetry"
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
// A reload changes it on its loop goroutine (onLoop), which alone uses
// the runner; what readers of other goroutines see is behind mu.
type managed struct {
	name  string
	store rolloutStore
	// process runs the versions of a process rollout; nil for URLs. It
	// outlives reloads: its processes run on while the rest is rebuilt.
	process *target.Process
	// relay steers the current proxy for the process target, which
	// keeps its Endpoints for life; nil for URLs.
	relay *endpointsRelay
	// versions tells the process target how each version runs.
	versions *processVersions
	meter    *metric.Set
	runner   *runtime.Runner
	hooks    *runtime.Hooks
	notifier *notify.Dispatcher
	env      env
	log      *slog.Logger
	clock    rollout.Clock
	wake     chan struct{}
	// reconf carries the changes of a reload to the loop goroutine.
	reconf chan func(context.Context)
	// ctx bounds the rollout's background work; cancel ends it, and wg
	// counts its goroutines, so that a removed rollout stops alone.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	// stopChecker ends the health checks of the current plane.
	stopChecker context.CancelFunc

	// answers collects the engine's answers to commands during a tick; the
	// loop delivers them once the tick has settled. Loop goroutine only.
	answers map[int64]error

	mu      sync.Mutex
	rollout *v1alpha1.Rollout
	plan    spec.Plan
	plane   *dataPlane
	addr    string // where its proxy listens
	// previewAddr is where its blue-green preview listens; empty for none.
	previewAddr string
	status      v1alpha1.RolloutStatus // the last status saved, for readers
	waiters     map[int64]chan error
}

// dataPlane is what serves and measures a rollout's traffic: rebuilt as a
// whole when a reload changes the proxy's settings.
type dataPlane struct {
	// proxy serves a service's traffic; nil for a flag, whose users get
	// their variant over OFREP from flag instead.
	proxy *proxy.Proxy
	flag  *flag.Live
	// checker probes URL upstreams; nil for processes, which the process
	// target probes replica by replica.
	checker *health.Checker
	builtin *metric.Builtin
	// health reports a role's health for views: healthy, why not, known.
	health func(role string) (healthy bool, reason string, known bool)
}

// env is what the rollouts of a daemon share.
type env struct {
	db       *store.Store
	stateDir string
	clock    rollout.Clock
	log      *slog.Logger
	// metrics are the series of every rollout of the daemon.
	metrics *telemetry.Rollouts
	// cookieKeys sign every proxy's sticky cookies.
	cookieKeys route.CookieKeys
	// inherit holds the output pipes of the processes to adopt, which
	// each rollout's process target takes as the daemon starts.
	inherit *Inheritance
	// stopsHeld holds back the process targets' stops (see
	// target.ProcessConfig.HoldStops); nil holds nothing.
	stopsHeld <-chan struct{}
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
	m = &managed{
		name: r.Name, rollout: r, plan: plan, env: e, log: e.log.With("rollout", r.Name), clock: e.clock,
		store:   rolloutStore{db: e.db, name: r.Name, spec: raw},
		wake:    make(chan struct{}, 1),
		reconf:  make(chan func(context.Context)),
		waiters: map[int64]chan error{},
		answers: map[int64]error{},
	}
	m.ctx, m.cancel = context.WithCancel(runCtx)
	defer func() {
		if err != nil {
			m.cancel()
		}
	}()
	if m.status, err = m.loadStatus(ctx); err != nil {
		return nil, err
	}
	if m.plane, err = m.newPlane(r, *m.status.Stable, e.cookieKeys); err != nil {
		return nil, err
	}
	tgt, err := m.newTarget(ctx)
	if err != nil {
		m.plane.close()
		return nil, err
	}
	defer func() {
		if err != nil && m.process != nil {
			m.shutdownProcesses(m.process)
		}
	}()
	if m.meter, err = m.newMeter(r, plan, m.plane); err != nil {
		return nil, err
	}
	if m.notifier, err = m.newNotifier(r); err != nil {
		return nil, err
	}
	m.hooks = runtime.NewHooks(m.ctx, r.Name, r.Namespace, plan, e.clock, e.log)
	m.runner = &runtime.Runner{
		Name: r.Name, Plan: plan, Status: m.status, Store: m.store, Target: tgt,
		Router: m.routerOn(m.plane), Meter: m.meter, Hooks: m.hooks, Clock: e.clock, Log: e.log,
		OnCommand: m.commandDone, OnEvents: m.notify,
	}
	if err := m.runner.Converge(ctx); err != nil {
		return nil, fmt.Errorf("rollout %s: applying the saved state: %w", r.Name, err)
	}
	return m, m.deployFromFile(ctx, m.status)
}

// newPlane builds the proxy of r, routing to stable, and what probes it:
// the health checker of URL upstreams. A process rollout's proxy is
// steered by the process target, which probes its replicas itself.
func (m *managed) newPlane(r *v1alpha1.Rollout, stable v1alpha1.VersionRef, keys route.CookieKeys) (*dataPlane, error) {
	if r.Spec.Flag != nil {
		return m.newFlagPlane(r.Spec.Flag, goalsOf(r), stable)
	}
	svc := r.Spec.Service
	cfg := proxy.Config{Name: r.Name, Traffic: svc.Traffic, Goals: goalsOf(r),
		VersionHeader: versionHeader(svc), Logger: m.env.log, CookieKeys: keys, Clock: m.clock,
		// An ejection is acted on at once: the loop wakes, sees the canary
		// down and rolls back (or waits for a person in hybrid mode).
		OnEject: func(string, string) { m.poke() }}
	pl := &dataPlane{}
	var err error
	if svc.Stable.Process != nil {
		// No replica of the stable is ready before its processes start.
		cfg.Stable = proxy.Upstream{Version: stable.Version}
		if pl.proxy, err = proxy.New(cfg); err != nil {
			return nil, err
		}
		if m.process != nil {
			pl.health = processHealth(m.process)
		}
		pl.builtin = metric.NewBuiltin(pl.proxy, m.clock)
		return pl, nil
	}
	urls, err := target.URLsOf(stable)
	if err != nil {
		return nil, err
	}
	cfg.Stable = proxy.Upstream{Version: stable.Version, URL: urls[0], Replicas: urls[1:]}
	if pl.proxy, err = proxy.New(cfg); err != nil {
		return nil, err
	}
	if pl.checker, err = proxy.NewHealthChecker(pl.proxy, healthConfig(svc.HealthCheck, m.poke, m.log)); err != nil {
		pl.proxy.Close()
		return nil, err
	}
	pl.health, pl.builtin = pl.checker.Health, metric.NewBuiltin(pl.proxy, m.clock)
	return pl, nil
}

// goalsOf is r's spec.analysis.goals that its proxy, or its flag's
// events, count: not those counted in Prometheus.
func goalsOf(r *v1alpha1.Rollout) []v1alpha1.Goal {
	if r.Spec.Analysis == nil {
		return nil
	}
	return slices.DeleteFunc(slices.Clone(r.Spec.Analysis.Goals), func(g v1alpha1.Goal) bool { return g.Prometheus != nil })
}

// newTarget builds the target that steers m's proxy: the process target
// when the versions are processes, which it starts, else the static
// target with the proxy's health checker, or a flag's own.
func (m *managed) newTarget(ctx context.Context) (rollout.Target, error) {
	if m.plane.flag != nil || m.rollout.Spec.Service.Stable.Process == nil {
		return m.targetOn(m.plane), nil
	}
	t, err := m.newProcessTarget(ctx, m.env.stateDir, m.env.inherit.takePipes(m.name))
	if err != nil {
		return nil, err
	}
	m.process, m.plane.health = t.Process, processHealth(t.Process)
	return t, nil
}

// targetOn is m's target steering the proxy of pl: for a process rollout,
// its one process target; for a flag, the flag.
func (m *managed) targetOn(pl *dataPlane) rollout.Target {
	if pl.flag != nil {
		return pl.flag
	}
	if m.process != nil {
		return processTarget{Process: m.process, versions: m.versions, proxy: pl.proxy}
	}
	return &target.Static{Proxy: pl.proxy, Health: pl.checker}
}

// routerOn is the router of pl: its proxy, or its flag.
func (m *managed) routerOn(pl *dataPlane) rollout.Router {
	if pl.flag != nil {
		return pl.flag
	}
	return router.Proxy{P: pl.proxy}
}

// newMeter builds the analysis of plan on the measurements of pl.
func (m *managed) newMeter(r *v1alpha1.Rollout, plan spec.Plan, pl *dataPlane) (*metric.Set, error) {
	cfg := metric.SetConfig{Rollout: r.Name, Namespace: r.Namespace, Plan: plan.Analysis, PostPromotion: plan.PostPromotion, Builtin: pl.builtin,
		Env: metric.Env{Clock: m.clock, Log: m.env.log}}
	if m.process != nil {
		cfg.Usage = m.process
	}
	return metric.NewSet(cfg)
}

// newNotifier builds the dispatcher of r's notifications; run starts it.
func (m *managed) newNotifier(r *v1alpha1.Rollout) (*notify.Dispatcher, error) {
	notifiers, err := notify.Build(r.Spec.Notifications)
	if err != nil {
		return nil, err
	}
	return notify.NewDispatcher(notifiers, notify.Options{Clock: m.clock, Logger: m.env.log}), nil
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
	stable, _ := fileVersions(m.rollout)
	res, err := installFromFile(m.plan, stable, "pipit", m.clock.Now())
	if err != nil {
		return v1alpha1.RolloutStatus{}, fmt.Errorf("rollout %s: %w", m.name, err)
	}
	return res.Status, m.store.Save(ctx, res.Status, res.Events, nil)
}

// installFromFile is the engine's decision to install the file's stable
// version as a first version always is installed, on Kubernetes too: a
// fresh status with stable as its stable version.
func installFromFile(plan spec.Plan, stable *v1alpha1.VersionRef, actor string, now time.Time) (engine.Result, error) {
	res := engine.Step(plan, v1alpha1.RolloutStatus{}, engine.Input{Now: now, Commands: []rollout.Command{{
		Kind: rollout.CommandDeploy, Canary: stable, Actor: actor, Reason: "rollout file",
	}}})
	if err := res.Consumed[0]; err != nil {
		return res, fmt.Errorf("installing the stable version: %w", err)
	}
	return res, nil
}

// deployFromFile queues a deploy of the file's canary when it names a
// version that is neither st's stable nor its canary, so editing the file
// and restarting (or reloading) rolls the new version out.
func (m *managed) deployFromFile(ctx context.Context, st v1alpha1.RolloutStatus) error {
	_, v := fileVersions(m.rollout)
	if v == nil {
		return nil
	}
	if (st.Stable != nil && st.Stable.Version == v.Version) || (st.Canary != nil && sameReach(*st.Canary, *v)) {
		return nil
	}
	_, err := m.store.enqueue(ctx, deployCommand(*v, "rollout file"))
	return err
}

// reachedAt names an upstream for people: its version, and the machines
// it is served by when it lists them.
func reachedAt(u v1alpha1.Upstream) string {
	v := versionOf(u).Version
	if len(u.URLs) > 0 {
		return fmt.Sprintf("%s (%s)", v, strings.Join(u.URLs, ", "))
	}
	return v
}

// sameReach reports whether a and b are the same version reached the
// same way: the same label at the same URL, or on the same machines (in
// the same order), so that a file's canary moved to other machines is a
// new canary. A process version is known by its label.
func sameReach(a, b v1alpha1.VersionRef) bool {
	return a.Version == b.Version && a.URL == b.URL && slices.Equal(a.URLs, b.URLs)
}

// notify sends the events to the rollout's notifiers, never blocking,
// and counts them.
func (m *managed) notify(st v1alpha1.RolloutStatus, events []v1alpha1.Event) {
	m.notifier.SendAll(m.name, st, events)
	m.env.metrics.Observe(metricsNamespace, m.name, st, events)
}

// exportMetrics publishes the rollout's status and its notifiers'
// counters, before its loop runs.
func (m *managed) exportMetrics() {
	m.env.metrics.Set(metricsNamespace, m.name, m.snapshot())
	m.env.metrics.Notifiers(metricsNamespace, m.name, m.notifier.Stats)
}

// run drives the rollout until it is stopped or the daemon's run
// context ends.
func (m *managed) run() {
	m.wg.Go(func() { m.notifier.Run(m.ctx) })
	m.runChecker(m.plane)
	m.wg.Go(m.loop)
}

// runChecker runs the health checks of pl, if it has any, until the next
// runChecker or the end of the rollout.
func (m *managed) runChecker(pl *dataPlane) {
	if m.stopChecker != nil {
		m.stopChecker()
	}
	if pl.checker == nil {
		return
	}
	ctx, cancel := context.WithCancel(m.ctx)
	m.stopChecker = cancel
	m.wg.Go(func() {
		if err := pl.checker.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
			m.log.Error("health checks stopped", "err", err)
		}
	})
}

// stop ends the rollout's loop, health checks and notifications and waits
// for them; its processes and proxy are left to the caller.
func (m *managed) stop() {
	m.cancel()
	m.wg.Wait()
	m.hooks.Wait()
}

// loop ticks the runner when woken, when the engine asked to be, and
// every pollInterval otherwise, waiting on the daemon's clock. Between
// two ticks it carries out the changes of a reload.
func (m *managed) loop() {
	ctx := m.ctx
	timer := m.clock.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-m.wake:
		case <-timer.C():
		case f := <-m.reconf:
			f(ctx)
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

// onLoop runs f on the loop goroutine between two ticks, where the
// runner may be changed, and waits until it has run.
func (m *managed) onLoop(f func(context.Context)) error {
	done := make(chan struct{})
	select {
	case m.reconf <- func(ctx context.Context) { defer close(done); f(ctx) }:
	case <-m.ctx.Done():
		return m.ctx.Err()
	}
	<-done
	return nil
}

// setAddr notes where the rollout's proxy, or its preview, listens.
func (m *managed) setAddr(addr string, preview bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if preview {
		m.previewAddr = addr
		return
	}
	m.addr = addr
}

// closeDataPlane stops the background work of the rollout's proxy.
func (m *managed) closeDataPlane() {
	if pl := m.dataPlane(); pl != nil {
		pl.close()
	}
}

// close stops the background work of pl's proxy; a flag has none.
func (pl *dataPlane) close() {
	if pl.proxy != nil {
		pl.proxy.Close()
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
	m.env.metrics.Set(metricsNamespace, m.name, m.status)
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
	m.mu.Lock()
	plan, addr, preview, pl := m.plan, m.addr, m.previewAddr, m.plane
	m.mu.Unlock()
	v := controlapi.NewView(m.name, plan, m.snapshot())
	v.Listen, v.Preview = addr, preview
	if pl.flag != nil {
		v.Flag = pl.flag.Flag().Key()
	}
	v.Live = live(pl)
	return v
}

// dataPlane is the rollout's current proxy and what measures it.
func (m *managed) dataPlane() *dataPlane {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.plane
}

// spec is the rollout as the daemon runs it now.
func (m *managed) spec() *v1alpha1.Rollout {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.rollout
}

// live summarises the proxy's measurements since the last check.
func live(pl *dataPlane) *controlapi.LiveMetrics {
	w, since := pl.builtin.Window()
	l := &controlapi.LiveMetrics{Since: since, Stable: pl.versionMetrics("stable", w.Stable)}
	if w.Canary.Version != "" {
		c := pl.versionMetrics("canary", w.Canary)
		l.Canary = &c
	}
	return l
}

func (pl *dataPlane) versionMetrics(role string, s traffic.VersionStats) controlapi.VersionMetrics {
	vm := controlapi.VersionMetrics{Version: s.Version, Requests: s.Requests}
	if healthy, reason, known := pl.health(role); known {
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

// fileVersions are the stable and canary versions r's file names: a
// service's upstreams, or a flag's default and rolled out variants;
// canary is nil when the file names none.
func fileVersions(r *v1alpha1.Rollout) (stable, canary *v1alpha1.VersionRef) {
	if f := r.Spec.Flag; f != nil {
		stable = &v1alpha1.VersionRef{Version: f.DefaultVariant}
		if f.RolloutVariant != "" {
			canary = &v1alpha1.VersionRef{Version: f.RolloutVariant}
		}
		return stable, canary
	}
	if c := r.Spec.Service.Canary; c != nil {
		canary = versionOf(*c)
	}
	return versionOf(r.Spec.Service.Stable), canary
}

// versionOf names an upstream's version, defaulting to its URL (the
// first of its machines').
func versionOf(u v1alpha1.Upstream) *v1alpha1.VersionRef {
	v := u.Version
	switch {
	case v != "":
	case u.URL == "" && len(u.URLs) > 0:
		v = u.URLs[0]
	default:
		v = u.URL
	}
	return &v1alpha1.VersionRef{Version: v, URL: u.URL, URLs: slices.Clone(u.URLs), Process: u.Process}
}
