package kube

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/metric"
	"github.com/pipit-dev/pipit/internal/notify"
	"github.com/pipit-dev/pipit/internal/rollout"
	"github.com/pipit-dev/pipit/internal/router"
	"github.com/pipit-dev/pipit/internal/runtime"
	"github.com/pipit-dev/pipit/internal/spec"
	"github.com/pipit-dev/pipit/internal/target"
)

// managed is the controller's memory of one rollout between reconciles:
// the runner with its analysis windows and hook runs. It is rebuilt from
// the Rollout's status when the spec changes or the controller restarts.
type managed struct {
	generation int64
	// measured is the analysis the runner was built for, with the
	// metric templates expanded.
	measured measured
	runner   *runtime.Runner
	store    *statusStore
	// target and router fan each call out to the Deployments of the
	// rollout (spec.targetRef, or each of spec.targetRefs).
	target *target.DeploymentSet
	router *router.Set
	// coordinated is set for a rollout of spec.targetRefs, whose status
	// lists its Deployments.
	coordinated bool
	hooks       *runtime.Hooks
	notifier    *notify.Dispatcher
	cancel      context.CancelFunc
	// converged is set once the saved state was re-applied after a
	// (re)build, before the first decision.
	converged bool
	meter     *metric.Set
	// cluster reads the built-in metrics from Prometheus; nil when the
	// rollout measures none (or the controller has no Prometheus).
	cluster *metric.ClusterStats
	// primed is set once cluster was first read, which starts the
	// windows: counts from before the (re)build are not the canary's.
	primed bool
	// refreshed is when cluster was last read.
	refreshed time.Time
	// plans are the Deployments' plans, whose traffic the built-in
	// metrics sum.
	plans []spec.KubePlan
	log   *slog.Logger
	// cache lists the rollout's RolloutCommands.
	cache client.Reader
}

// Reading the built-in metrics from Prometheus: at most once a second
// (a rollout whose steps are due is ticked far more often, and the
// counts are no fresher than the last scrape anyway), and within a bound
// that keeps a slow Prometheus from holding the reconcile up.
const (
	clusterRefreshEvery   = time.Second
	clusterRefreshTimeout = 5 * time.Second
)

// noPrometheusError is the error of a rollout measuring a built-in metric,
// or counting a goal in Prometheus without naming one, when the
// controller was given no Prometheus to read it from.
type noPrometheusError struct {
	// field is where the rollout asks for it; what is what is read, and
	// instead how the rollout itself could say where.
	field, what, instead string
}

func (e *noPrometheusError) Error() string {
	return fmt.Sprintf("%s: %s, which the controller reads from Prometheus; start pipit controller with --prometheus-url, or %s", e.field, e.what, e.instead)
}

// unaddressedGoal is the error of the first goal counted in Prometheus
// that names no address; nil when every one names one.
func unaddressedGoal(s *v1alpha1.RolloutSpec) *noPrometheusError {
	if s.Analysis == nil {
		return nil
	}
	for i, g := range s.Analysis.Goals {
		if g.Prometheus != nil && g.Prometheus.Address == "" {
			return &noPrometheusError{field: fmt.Sprintf("spec.analysis.goals[%d].prometheus.address", i),
				what: fmt.Sprintf("goal %s is counted by queries", g.Name), instead: "give the goal an address"}
		}
	}
	return nil
}

// newMeter builds the rollout's Set, and the source of its built-in
// metrics in Prometheus when it measures any or runs the sequential test
// and the controller has a Prometheus. The series read are those of kp's
// router, the first Deployment's.
func (rc *Reconciler) newMeter(r *v1alpha1.Rollout, plan spec.Plan, kp spec.KubePlan, log *slog.Logger) (*metric.Set, *metric.ClusterStats, error) {
	cfg := metric.SetConfig{Rollout: r.Name, Namespace: r.Namespace, Plan: plan.Analysis, PostPromotion: plan.PostPromotion,
		GoalPrometheus: rc.PrometheusURL, Env: metric.Env{Clock: rc.Clock, Log: log}}
	field, name := trafficMetric(&r.Spec)
	var cluster *metric.ClusterStats
	switch {
	case rc.PrometheusURL != "" && (field != "" || plan.Analysis.Sequential.Enabled):
		var err error
		if cluster, err = metric.NewClusterStats(rc.PrometheusURL, metric.ClusterQueriesFor(kp), cfg.Env); err != nil {
			return nil, nil, fmt.Errorf("--prometheus-url: %w", err)
		}
		cfg.Builtin = metric.NewBuiltin(cluster, rc.Clock)
	case field != "":
		return nil, nil, &noPrometheusError{field: field, what: name + " is a built-in metric", instead: "give the metric a provider"}
	}
	if err := unaddressedGoal(&r.Spec); err != nil && rc.PrometheusURL == "" {
		return nil, nil, err
	}
	meter, err := metric.NewSet(cfg)
	return meter, cluster, err
}

// backToStable reports whether the Deployment went back to the stable
// version's template while a canary is under way: deployed, that takes the
// canary back at once (see the engine's deploy). Not while it is being
// promoted or rolled back, which the engine lets finish.
func backToStable(st v1alpha1.RolloutStatus, desired v1alpha1.VersionRef) bool {
	switch st.Phase {
	case v1alpha1.PhaseProgressing, v1alpha1.PhasePaused, v1alpha1.PhaseAwaitingDecision:
		return st.Canary != nil && desired.Template == st.Stable.Template
	}
	return false
}

// trafficMetric names the first metric of the spec that is a built-in
// metric of the traffic, and its field; "" when there is none. The
// conversion metrics are not: in a cluster their goals' own queries count
// them.
func trafficMetric(s *v1alpha1.RolloutSpec) (field, name string) {
	type list struct {
		field   string
		metrics []v1alpha1.MetricSpec
	}
	var lists []list
	if s.Analysis != nil {
		lists = append(lists, list{"spec.analysis.metrics", s.Analysis.Metrics})
	}
	if s.PostPromotion != nil {
		lists = append(lists, list{"spec.postPromotion.metrics", s.PostPromotion.Metrics})
	}
	for _, l := range lists {
		for i, m := range l.metrics {
			if _, conversion := spec.ConversionGoal(m.Name); m.Provider == nil && metric.IsTrafficMetric(m.Name) && !conversion {
				return fmt.Sprintf("%s[%d].provider", l.field, i), m.Name
			}
		}
	}
	return "", ""
}

// refreshCluster reads the built-in metrics' counts of both versions
// before the runner decides; a failure leaves the last counts, so the
// window has no new requests and the metrics no data.
func (m *managed) refreshCluster(ctx context.Context, st v1alpha1.RolloutStatus) {
	canary, stable := metric.ClusterTargets(m.plans)
	envoy := m.router.EnvoyClusters()
	canary.EnvoyClusters, stable.EnvoyClusters = envoy.Canary, envoy.Stable
	if st.Canary != nil {
		canary.Version = st.Canary.Version
	}
	if st.Stable != nil {
		stable.Version = st.Stable.Version
	}
	ctx, cancel := context.WithTimeout(ctx, clusterRefreshTimeout)
	defer cancel()
	if err := m.cluster.Refresh(ctx, canary, stable); err != nil {
		m.log.WarnContext(ctx, "reading the built-in metrics from Prometheus", "err", err)
	}
	if !m.primed {
		m.meter.Reset()
		m.primed = true
	}
}

// newManaged builds the runner of a valid rollout from its status.
func (rc *Reconciler) newManaged(r *v1alpha1.Rollout) (*managed, error) {
	plan, err := spec.Resolve(&r.Spec)
	if err != nil {
		return nil, err
	}
	kps := spec.ResolveKubernetesTargets(r)
	for i := range kps {
		kps[i].UndoWindow = plan.UndoWindow
	}
	log := rc.log().With("rollout", r.Name, "namespace", r.Namespace)
	meter, cluster, err := rc.newMeter(r, plan, kps[0], log)
	if err != nil {
		return nil, err
	}
	notifiers, err := notify.Build(r.Spec.Notifications)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(rc.ctx)
	m := &managed{
		generation:  r.Generation,
		measured:    measuredOf(r),
		coordinated: len(r.Spec.TargetRefs) > 0,
		notifier:    notify.NewDispatcher(notifiers, notify.Options{Clock: rc.Clock, Logger: log}),
		hooks:       runtime.NewHooks(ctx, r.Name, r.Namespace, plan, rc.Clock, log),
		cancel:      cancel,
		meter:       meter,
		cluster:     cluster,
		plans:       kps,
		log:         log,
		cache:       rc.Client,
	}
	if m.target, m.router, err = newTargets(rc.Client, r, kps, rc.Clock, log); err != nil {
		cancel()
		return nil, err
	}
	if st := r.Status.Stable; st != nil {
		if err := m.target.Holds(*st); err != nil {
			cancel()
			return nil, fmt.Errorf("%s: %w", targetsField(r), err)
		}
	}
	key := types.NamespacedName{Namespace: r.Namespace, Name: r.Name}
	m.store = &statusStore{c: rc.Direct, key: key, generation: r.Generation, events: rc.recordEvent}
	status := *r.Status.DeepCopy()
	status.ObservedGeneration = r.Generation
	m.runner = &runtime.Runner{
		Name: r.Name, Plan: plan, Status: status, Store: m.store, Target: m.target, Router: m.router,
		Meter: meter, Hooks: m.hooks, Clock: rc.Clock, Log: log,
		OnCommand: m.store.answer,
		OnEvents: func(st v1alpha1.RolloutStatus, events []v1alpha1.Event) {
			m.notifier.SendAll(r.Name, st, events)
			rc.metrics.Observe(r.Namespace, r.Name, st, events)
		},
	}
	rc.metrics.Notifiers(r.Namespace, r.Name, m.notifier.Stats)
	go m.notifier.Run(ctx)
	return m, nil
}

// stop ends the rollout's background work and waits for it: hook runs
// end with their context, and the notifier delivers what was queued before
// stop (within its drain timeout) before it returns, so the last events of
// a rollout that is rebuilt, deleted or shut down still go out.
func (m *managed) stop() {
	m.cancel()
	m.hooks.Wait()
	m.notifier.Close()
}

// tick runs the rollout once: turns a new pod template (or the first one)
// into a deploy, and lets the runner decide. It returns
// when the rollout next needs a tick.
func (m *managed) tick(ctx context.Context, r *v1alpha1.Rollout, now time.Time) (time.Duration, error) {
	desired, err := m.target.Desired(ctx)
	if err != nil {
		return 0, err
	}
	if !m.converged {
		if err := m.runner.Converge(ctx); err != nil {
			return 0, fmt.Errorf("re-applying the saved state: %w", err)
		}
		m.converged = true
	}
	st := m.runner.Status
	// The first version is installed as any version is deployed: the
	// engine decides it is not a canary since there is no stable yet.
	m.store.deploy = nil
	if st.Stable == nil {
		m.store.deploy = &desired
	} else {
		if err := m.target.EnsureServices(ctx); err != nil {
			return 0, err
		}
		// Once the undo window passed, the previous version stops being
		// kept warm; the rollout itself goes on meanwhile.
		if err := m.target.RetireWarm(ctx); err != nil && !errors.Is(err, target.ErrNotReady) {
			return 0, err
		}
		if desired.Template != st.Stable.Template && (st.Canary == nil || desired.Template != st.Canary.Template) || backToStable(st, desired) {
			m.store.deploy = &desired
		}
	}
	cmds, err := listCommands(ctx, m.cache, r)
	if err != nil {
		return 0, err
	}
	expired := m.store.commands.take(cmds, r.Status.ConsumedCommands, now)
	if m.cluster != nil && now.Sub(m.refreshed) >= clusterRefreshEvery {
		m.refreshCluster(ctx, st)
		m.refreshed = now
	}
	next, ok, err := m.runner.Tick(ctx)
	err = errors.Join(err, m.store.commands.flush(ctx, m.store.c), deleteExpired(ctx, m.store.c, expired))
	if m.coordinated {
		err = errors.Join(err, m.store.saveTargets(ctx, m.target.States(ctx)))
	}
	if err != nil {
		return 0, err
	}
	if !ok {
		return idlePoll, nil
	}
	return min(max(next.Sub(now), minRequeue), activePoll), nil
}

// release undoes what the rollout changed outside the objects it owns:
// the user's Deployment serves again and pipit's routes leave the user's
// route objects.
func (m *managed) release(ctx context.Context) error {
	if err := m.router.Remove(ctx); err != nil {
		return err
	}
	return m.target.Release(ctx)
}

// newRelease builds what release needs for a rollout that is being
// deleted, when the controller has no runner for it (for example an
// invalid spec, or a restart).
func newRelease(c client.Client, r *v1alpha1.Rollout, log *slog.Logger) (*managed, error) {
	var err error
	m := &managed{}
	m.target, m.router, err = newTargets(c, r, spec.ResolveKubernetesTargets(r), nil, log)
	return m, err
}

// targetsField names the field that lists a rollout's Deployments.
func targetsField(r *v1alpha1.Rollout) string {
	if len(r.Spec.TargetRefs) > 0 {
		return "spec.targetRefs"
	}
	return "spec.targetRef"
}

// newTargets builds the target and the router of each Deployment plans
// name, and the set of each that the runner drives.
func newTargets(c client.Client, r *v1alpha1.Rollout, plans []spec.KubePlan, clock rollout.Clock, log *slog.Logger) (*target.DeploymentSet, *router.Set, error) {
	names := make([]string, len(plans))
	workloads := make([]target.Workload, len(plans))
	routers := make([]rollout.RouteRemover, len(plans))
	for i, kp := range plans {
		d := target.NewDeployment(c, r, kp, clock, log)
		rt, err := router.ForKubernetes(c, r, kp, d, log)
		if err != nil {
			return nil, nil, err
		}
		names[i], workloads[i], routers[i] = kp.Target, d, rt
	}
	return target.NewDeploymentSet(names, workloads), router.NewSet(names, routers), nil
}
