// Package kube is pipit's Kubernetes runtime: a controller that reconciles
// Rollout resources with the same engine, analysis and hooks as the
// standalone daemon. A rollout's target is pipit's pair of copies of the
// user's Deployment (internal/target), its router a Gateway API HTTPRoute,
// an Istio VirtualService or the replica counts (internal/router), and its
// store the Rollout's status subresource.
package kube

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/rollout"
	"github.com/pipit-dev/pipit/internal/router"
	"github.com/pipit-dev/pipit/internal/spec"
	"github.com/pipit-dev/pipit/internal/target"
	"github.com/pipit-dev/pipit/internal/telemetry"
)

// Finalizer holds a Rollout's deletion until pipit has handed the service
// back to the user's Deployment and taken its rules out of user routes.
const Finalizer = "pipit.dev/release"

// Requeue bounds: a rollout under way is looked at again by its next due
// time, at the latest after activePoll; an idle one after idlePoll (watches
// wake both sooner on any change).
const (
	minRequeue = 100 * time.Millisecond
	activePoll = 5 * time.Second
	idlePoll   = time.Minute
	// stalledPoll is how soon a rollout whose target is missing is tried
	// again; notReadyPoll how soon a step waiting for a copy to roll out,
	// at the latest: the watch on the Deployments wakes the rollout as
	// soon as the copy's status changes, so this poll is only a safety
	// net, and a short one made 500 waiting rollouts ask for 500
	// reconciles a second.
	stalledPoll  = 15 * time.Second
	notReadyPoll = 10 * time.Second
)

// targetIndex indexes Rollouts by the names of their target Deployments.
const targetIndex = "spec.targetRef.name"

// Options configure the controller.
type Options struct {
	// Config reaches the API server.
	Config *rest.Config
	// Namespace, when set, limits the controller to one namespace.
	Namespace string
	// LeaderElection makes replicas elect one leader through a Lease in
	// LeaderElectionNamespace; only the leader reconciles.
	LeaderElection          bool
	LeaderElectionNamespace string
	// LeaseDuration, RenewDeadline and RetryPeriod tune the election;
	// zero takes controller-runtime's defaults (15s, 10s, 2s).
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
	// MetricsAddr serves /metrics ("0" turns it off); ProbeAddr serves
	// /healthz and /readyz ("" turns them off).
	MetricsAddr, ProbeAddr string
	// Concurrency is how many rollouts are reconciled at once. Default 8.
	Concurrency int
	// Log receives the controller's logs.
	Log *slog.Logger
	// Clock is the controller's clock; nil is the wall clock.
	Clock rollout.Clock
	// PrometheusURL is where the built-in metrics are read (such as
	// request-success-rate without a provider); empty refuses them.
	PrometheusURL string
}

// LeaderElectionID names the Lease the replicas compete for.
const LeaderElectionID = "pipit-controller.pipit.dev"

// Scheme knows the kinds the controller reads and writes.
func Scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, v1alpha1.AddToScheme, router.AddToScheme} {
		if err := add(s); err != nil {
			panic(err) // the types are compiled in: cannot fail
		}
	}
	return s
}

// sharedMetrics registers the controller's metrics once per process, on
// the registry controller-runtime serves.
var sharedMetrics = sync.OnceValue(func() *telemetry.Rollouts { return telemetry.New(ctrlmetrics.Registry) })

// Run runs the controller until ctx ends.
func Run(ctx context.Context, o Options) error {
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	logger := logr.FromSlogHandler(log.Handler())
	// controller-runtime's packages log through its global logger too.
	ctrl.SetLogger(logger)
	mo := ctrl.Options{
		Scheme:                  Scheme(),
		Logger:                  logger,
		Metrics:                 metricsserver.Options{BindAddress: o.MetricsAddr},
		HealthProbeBindAddress:  o.ProbeAddr,
		LeaderElection:          o.LeaderElection,
		LeaderElectionID:        LeaderElectionID,
		LeaderElectionNamespace: o.LeaderElectionNamespace,
		// Stepping down at once lets a new leader take over without
		// waiting for the lease to expire when this one stops cleanly.
		LeaderElectionReleaseOnCancel: true,
	}
	if o.LeaseDuration > 0 {
		mo.LeaseDuration, mo.RenewDeadline, mo.RetryPeriod = &o.LeaseDuration, &o.RenewDeadline, &o.RetryPeriod
	}
	if o.Namespace != "" {
		mo.Cache = cache.Options{DefaultNamespaces: map[string]cache.Config{o.Namespace: {}}}
	}
	mgr, err := ctrl.NewManager(o.Config, mo)
	if err != nil {
		return fmt.Errorf("starting the controller manager: %w", err)
	}
	if o.ProbeAddr != "" {
		if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
			return err
		}
		if err := mgr.AddReadyzCheck("ping", healthz.Ping); err != nil {
			return err
		}
	}
	direct, err := client.New(o.Config, client.Options{Scheme: mgr.GetScheme()})
	if err != nil {
		return err
	}
	rc := &Reconciler{
		Client: mgr.GetClient(), Direct: direct, Recorder: mgr.GetEventRecorder("pipit"),
		Log: log, Clock: o.Clock, PrometheusURL: o.PrometheusURL, metrics: sharedMetrics(), ctx: ctx,
	}
	if err := rc.SetupWithManager(ctx, mgr, o.Concurrency); err != nil {
		return err
	}
	defer rc.stopAll()
	log.Info("pipit controller starting", "namespace", o.Namespace, "leaderElection", o.LeaderElection)
	return mgr.Start(ctx)
}

// Reconciler reconciles Rollouts.
type Reconciler struct {
	// Client reads through the manager's cache and writes.
	Client client.Client
	// Direct reads from and writes to the API server without the cache:
	// the status store must see its own last write.
	Direct   client.Client
	Recorder recorder.EventRecorder
	Log      *slog.Logger
	Clock    rollout.Clock
	// PrometheusURL is where the built-in metrics are read; empty when
	// the controller has none.
	PrometheusURL string

	metrics *telemetry.Rollouts
	// ctx ends the rollouts' background work (hooks, notifications).
	ctx context.Context

	mu       sync.Mutex
	rollouts map[types.NamespacedName]*managed
}

// SetupWithManager registers the controller: Rollouts, the Deployments
// they target, the copies they own, the RolloutCommands to them and the
// metric templates they use wake it.
func (rc *Reconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager, concurrency int) error {
	if concurrency <= 0 {
		concurrency = 8
	}
	err := mgr.GetFieldIndexer().IndexField(ctx, &v1alpha1.Rollout{}, targetIndex, func(o client.Object) []string {
		r := o.(*v1alpha1.Rollout)
		var names []string
		if t := r.Spec.TargetRef; t != nil {
			names = append(names, t.Name)
		}
		for _, t := range r.Spec.TargetRefs {
			names = append(names, t.Name)
		}
		return names
	})
	if err != nil {
		return err
	}
	if err := mgr.GetFieldIndexer().IndexField(ctx, &v1alpha1.RolloutCommand{}, commandIndex, indexCommands); err != nil {
		return err
	}
	if err := mgr.GetFieldIndexer().IndexField(ctx, &v1alpha1.Rollout{}, templateIndex, templateKeys); err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("rollout").
		For(&v1alpha1.Rollout{}).
		Watches(&appsv1.Deployment{}, handler.EnqueueRequestsFromMapFunc(rc.rolloutsOf)).
		Watches(&v1alpha1.RolloutCommand{}, handler.EnqueueRequestsFromMapFunc(rolloutOfCommand)).
		Watches(&v1alpha1.RolloutMetricTemplate{}, handler.EnqueueRequestsFromMapFunc(rc.rolloutsOfTemplate)).
		Watches(&v1alpha1.ClusterRolloutMetricTemplate{}, handler.EnqueueRequestsFromMapFunc(rc.rolloutsOfTemplate)).
		WithOptions(controller.Options{MaxConcurrentReconciles: concurrency, SkipNameValidation: ptr.To(true)}).
		Complete(rc)
}

// rolloutsOf maps a Deployment to the Rollouts it matters to: the one
// that owns it (a copy) and those that target it.
func (rc *Reconciler) rolloutsOf(ctx context.Context, o client.Object) []reconcile.Request {
	var out []reconcile.Request
	if ref := metav1.GetControllerOf(o); ref != nil && ref.Kind == v1alpha1.KindRollout {
		out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: o.GetNamespace(), Name: ref.Name}})
	}
	var list v1alpha1.RolloutList
	if err := rc.Client.List(ctx, &list, client.InNamespace(o.GetNamespace()), client.MatchingFields{targetIndex: o.GetName()}); err != nil {
		rc.log().Warn("listing the rollouts of a deployment", "deployment", o.GetName(), "err", err)
		return out
	}
	for _, r := range list.Items {
		out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: r.Namespace, Name: r.Name}})
	}
	return out
}

// Reconcile moves one rollout on.
func (rc *Reconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	var r v1alpha1.Rollout
	if err := rc.Client.Get(ctx, req.NamespacedName, &r); err != nil {
		if apierrors.IsNotFound(err) {
			rc.forget(req.NamespacedName)
			return reconcile.Result{}, nil
		}
		return reconcile.Result{}, err
	}
	if !r.DeletionTimestamp.IsZero() {
		return rc.finalize(ctx, &r)
	}
	if !controllerutil.ContainsFinalizer(&r, Finalizer) {
		controllerutil.AddFinalizer(&r, Finalizer)
		return reconcile.Result{}, rc.Client.Update(ctx, &r)
	}
	if err := validate(&r); err != nil {
		rc.forget(req.NamespacedName)
		rc.log().Info("rollout refused", "rollout", req.NamespacedName, "err", err)
		return reconcile.Result{}, stall(ctx, rc.Direct, req.NamespacedName, r.Generation, "InvalidSpec", err.Error())
	}
	expanded, problems, err := rc.withTemplates(ctx, &r)
	if err != nil {
		return reconcile.Result{}, err
	}
	if len(problems) > 0 {
		rc.forget(req.NamespacedName)
		// The watch on the templates wakes the rollout when one is
		// created or changed; the poll is a safety net.
		return reconcile.Result{RequeueAfter: stalledPoll}, stall(ctx, rc.Direct, req.NamespacedName, r.Generation, "TemplateProblem", problems.Error())
	}
	m, err := rc.managedFor(expanded)
	if err != nil {
		reason := "InvalidSpec"
		if _, ok := errors.AsType[*noPrometheusError](err); ok {
			reason = "NoPrometheus"
		}
		return reconcile.Result{}, stall(ctx, rc.Direct, req.NamespacedName, r.Generation, reason, err.Error())
	}
	wait, err := m.tick(ctx, expanded, rc.now())
	if errors.Is(err, target.ErrNotReady) {
		return reconcile.Result{RequeueAfter: notReadyPoll}, nil // a copy is still rolling out
	}
	if errors.Is(err, target.ErrTargetNotFound) {
		msg := fmt.Sprintf("%v: pipit waits for it", err)
		if r.Spec.TargetRef != nil {
			msg = fmt.Sprintf("Deployment %s/%s not found: pipit waits for it", r.Namespace, r.Spec.TargetRef.Name)
		}
		return reconcile.Result{RequeueAfter: stalledPoll}, stall(ctx, rc.Direct, req.NamespacedName, r.Generation, "TargetNotFound", msg)
	}
	if err != nil {
		return reconcile.Result{}, err // retried with controller-runtime's backoff
	}
	rc.metrics.Set(r.Namespace, r.Name, m.runner.Status)
	return reconcile.Result{RequeueAfter: wait}, nil
}

// validate checks a Rollout read from the API server as pipit validate
// checks a file; the server's schema has refused most mistakes already.
func validate(r *v1alpha1.Rollout) error {
	c := r.DeepCopy()
	c.APIVersion, c.Kind = v1alpha1.APIVersion, v1alpha1.KindRollout
	if err := spec.Validate(c).Err(); err != nil {
		return err
	}
	if c.Spec.Flag != nil {
		return errors.New("spec.flag: flag rollouts are served by pipit up --ofrep (standalone) only for now; the controller rolls out Deployments (spec.targetRef)")
	}
	if spec.RuntimeOf(&c.Spec) != spec.RuntimeKubernetes {
		return errors.New("spec.targetRef is required: pipit controller rolls out Deployments; spec.service is for pipit up")
	}
	return nil
}

// managedFor returns the rollout's runner, built anew when the spec, or
// a metric template it uses, changed since it was built. The lock is held only to look the runner up
// and to detach or attach one: stopping the old runner waits for its hooks
// and notifications, which must not hold up the reconciles of other
// rollouts. Reconciles of one rollout never overlap, so nothing else
// touches its entry in between.
func (rc *Reconciler) managedFor(r *v1alpha1.Rollout) (*managed, error) {
	key := types.NamespacedName{Namespace: r.Namespace, Name: r.Name}
	rc.mu.Lock()
	old := rc.rollouts[key]
	if old != nil && old.generation == r.Generation && old.measured.equal(measuredOf(r)) {
		rc.mu.Unlock()
		return old, nil
	}
	delete(rc.rollouts, key)
	rc.mu.Unlock()
	if old != nil {
		old.stop()
	}
	m, err := rc.newManaged(r)
	if err != nil {
		return nil, err
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.rollouts == nil {
		rc.rollouts = map[types.NamespacedName]*managed{}
	}
	rc.rollouts[key] = m
	return m, nil
}

// finalize hands the service back before a Rollout goes.
func (rc *Reconciler) finalize(ctx context.Context, r *v1alpha1.Rollout) (reconcile.Result, error) {
	if !controllerutil.ContainsFinalizer(r, Finalizer) {
		return reconcile.Result{}, nil
	}
	key := types.NamespacedName{Namespace: r.Namespace, Name: r.Name}
	rc.mu.Lock()
	m := rc.rollouts[key]
	rc.mu.Unlock()
	if m == nil {
		var err error
		if m, err = newRelease(rc.Client, r, rc.log()); err != nil {
			return reconcile.Result{}, fmt.Errorf("releasing %s: %w", key, err)
		}
	}
	if err := m.release(ctx); err != nil {
		if errors.Is(err, target.ErrNotReady) {
			// The user's Deployment is scaling back up.
			return reconcile.Result{RequeueAfter: notReadyPoll}, nil
		}
		return reconcile.Result{}, fmt.Errorf("releasing %s: %w", key, err)
	}
	controllerutil.RemoveFinalizer(r, Finalizer)
	if err := rc.Client.Update(ctx, r); err != nil {
		return reconcile.Result{}, err
	}
	rc.forget(key)
	return reconcile.Result{}, nil
}

// forget drops a rollout's runner and metrics.
func (rc *Reconciler) forget(key types.NamespacedName) {
	rc.mu.Lock()
	m := rc.rollouts[key]
	delete(rc.rollouts, key)
	rc.mu.Unlock()
	if m != nil {
		m.stop()
	}
	rc.metrics.Forget(key.Namespace, key.Name)
}

// stopAll ends every rollout's background work when the controller
// stops, and waits until it has: the rollouts stop side by side, so that
// shutting down takes as long as the slowest, not all of them in turn.
func (rc *Reconciler) stopAll() {
	rc.mu.Lock()
	all := rc.rollouts
	rc.rollouts = nil
	rc.mu.Unlock()
	var wg sync.WaitGroup
	for _, m := range all {
		wg.Go(m.stop)
	}
	wg.Wait()
}

// recordEvent records a rollout transition as a Kubernetes Event.
func (rc *Reconciler) recordEvent(r *v1alpha1.Rollout, e v1alpha1.Event) {
	if rc.Recorder != nil {
		rc.Recorder.Eventf(r, nil, eventType(e), e.Reason, e.Reason, "%s", e.Message)
	}
}

func (rc *Reconciler) now() time.Time { return rollout.ClockOrSystem(rc.Clock).Now() }

func (rc *Reconciler) log() *slog.Logger {
	if rc.Log != nil {
		return rc.Log
	}
	return slog.New(slog.DiscardHandler)
}
