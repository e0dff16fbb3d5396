package kube

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/engine"
	"github.com/pipit-dev/pipit/internal/metric"
	"github.com/pipit-dev/pipit/internal/notify"
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
	runner     *runtime.Runner
	store      *statusStore
	target     *target.Deployment
	router     kubeRouter
	hooks      *runtime.Hooks
	notifier   *notify.Dispatcher
	cancel     context.CancelFunc
	// converged is set once the saved state was re-applied after a
	// (re)build, before the first decision.
	converged bool
}

// kubeRouter is what the controller needs of a Kubernetes router: the
// weight, whether pipit's match rules apply, and cleaning up.
type kubeRouter interface {
	Apply(ctx context.Context, w v1alpha1.Percent, canaryLive bool) error
	Weight() v1alpha1.Percent
	Remove(ctx context.Context) error
}

// routerAdapter lets the runner steer a Kubernetes router: the match rules
// apply while the runner's rollout is live.
type routerAdapter struct {
	r      kubeRouter
	runner *runtime.Runner
}

func (a routerAdapter) SetWeight(ctx context.Context, w v1alpha1.Percent) error {
	return a.r.Apply(ctx, w, canaryLive(a.runner.Status.Phase))
}

// canaryLive reports whether requests may reach the canary in phase p:
// not before a rollout, and not from the moment it rolls back.
func canaryLive(p v1alpha1.Phase) bool {
	return !p.Terminal() && p != v1alpha1.PhaseIdle && p != v1alpha1.PhaseRollingBack
}

func (a routerAdapter) Weight() v1alpha1.Percent { return a.r.Weight() }

// newManaged builds the runner of a valid rollout from its status.
func (rc *Reconciler) newManaged(r *v1alpha1.Rollout) (*managed, error) {
	plan, err := spec.Resolve(&r.Spec)
	if err != nil {
		return nil, err
	}
	kp := spec.ResolveKubernetes(r)
	log := rc.log().With("rollout", r.Name, "namespace", r.Namespace)
	meter, err := metric.NewSet(metric.SetConfig{Rollout: r.Name, Namespace: r.Namespace, Plan: plan.Analysis,
		Env: metric.Env{Clock: rc.Clock, Log: log}})
	if err != nil {
		return nil, err
	}
	notifiers, err := notify.Build(r.Spec.Notifications)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(rc.ctx)
	m := &managed{
		generation: r.Generation,
		target:     target.NewDeployment(rc.Client, r, kp, log),
		notifier:   notify.NewDispatcher(notifiers, notify.Options{Clock: rc.Clock, Logger: log}),
		hooks:      runtime.NewHooks(ctx, r.Name, r.Namespace, plan, rc.Clock, log),
		cancel:     cancel,
	}
	m.router = routerFor(rc.Client, r, kp, m.target, log)
	key := types.NamespacedName{Namespace: r.Namespace, Name: r.Name}
	m.store = &statusStore{c: rc.Direct, key: key, generation: r.Generation, events: rc.recordEvent}
	status := *r.Status.DeepCopy()
	status.ObservedGeneration = r.Generation
	m.runner = &runtime.Runner{
		Name: r.Name, Plan: plan, Status: status, Store: m.store, Target: m.target,
		Meter: meter, Hooks: m.hooks, Clock: rc.Clock, Log: log,
		OnCommand: m.store.answer,
		OnEvents: func(st v1alpha1.RolloutStatus, events []v1alpha1.Event) {
			m.notifier.SendAll(r.Name, st, events)
			rc.metrics.observe(r.Namespace, r.Name, st, events)
		},
	}
	m.runner.Router = routerAdapter{r: m.router, runner: m.runner}
	go m.notifier.Run(ctx)
	return m, nil
}

// stop ends the rollout's background work: hook runs and notifications.
func (m *managed) stop() {
	m.cancel()
	m.hooks.Wait()
}

// tick runs the rollout once: installs the target the first time, turns a
// new pod template into a deploy, and lets the runner decide. It returns
// when the rollout next needs a tick.
func (m *managed) tick(ctx context.Context, r *v1alpha1.Rollout, now time.Time) (time.Duration, error) {
	desired, err := m.target.Desired(ctx)
	if err != nil {
		return 0, err
	}
	if m.runner.Status.Stable == nil {
		return m.install(ctx, r, desired, now)
	}
	if !m.converged {
		if err := m.runner.Converge(ctx); err != nil {
			return 0, fmt.Errorf("re-applying the saved state: %w", err)
		}
		m.converged = true
	}
	if err := m.target.EnsureServices(ctx); err != nil {
		return 0, err
	}
	st := m.runner.Status
	m.store.deploy = nil
	if desired.Template != st.Stable.Template && (st.Canary == nil || desired.Template != st.Canary.Template) {
		m.store.deploy = &desired
	}
	m.store.setRequests(r.Status.Commands)
	next, ok, err := m.runner.Tick(ctx)
	if ferr := m.store.flushResults(ctx); ferr != nil && err == nil {
		err = ferr
	}
	if err != nil {
		return 0, err
	}
	if !ok {
		return idlePoll, nil
	}
	return min(max(next.Sub(now), minRequeue), activePoll), nil
}

// install makes the first version the stable one: nothing to compare it
// with, so no analysis and no canary.
func (m *managed) install(ctx context.Context, r *v1alpha1.Rollout, desired v1alpha1.VersionRef, now time.Time) (time.Duration, error) {
	if err := m.target.Install(ctx, desired); err != nil {
		return 0, err
	}
	// All traffic to stable through the router from the start, so that
	// the first canary only changes weights.
	if err := m.router.Apply(ctx, 0, false); err != nil {
		return 0, err
	}
	st := m.runner.Status
	st.Phase = v1alpha1.PhaseIdle
	st.Stable = &desired
	st.Message = "Installed " + desired.Version + " as the stable version: a first install has nothing to compare with, so it is not a canary"
	st.ObservedGeneration = r.Generation
	st.Conditions = engine.Conditions(st, now)
	ev := v1alpha1.Event{Type: v1alpha1.EventNormal, Reason: "Installed", Message: st.Message, Phase: st.Phase, Actor: "pipit"}
	ev.Time.Time = now
	if err := m.store.Save(ctx, st, []v1alpha1.Event{ev}, nil); err != nil {
		return 0, err
	}
	m.runner.Status = st
	m.converged = true
	m.notifier.SendAll(r.Name, st, []v1alpha1.Event{ev})
	return minRequeue, nil
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
func newRelease(c client.Client, r *v1alpha1.Rollout, log *slog.Logger) *managed {
	kp := spec.ResolveKubernetes(r)
	m := &managed{target: target.NewDeployment(c, r, kp, log)}
	m.router = routerFor(c, r, kp, m.target, log)
	return m
}

// routerFor builds the router the plan names; without one, the canary's
// share of replicas follows the weight.
func routerFor(c client.Client, r *v1alpha1.Rollout, kp spec.KubePlan, t *target.Deployment, log *slog.Logger) kubeRouter {
	switch kp.Router {
	case spec.RouterGatewayAPI:
		return router.NewGatewayAPI(c, r, kp, log)
	case spec.RouterIstio:
		return router.NewIstio(c, r, kp, log)
	}
	return &router.Replicas{Scaler: t}
}
