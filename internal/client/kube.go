package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/util/retry"
	ctrlclient "sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/controlapi"
	"github.com/pipit-dev/pipit/internal/engine"
	"github.com/pipit-dev/pipit/internal/rollout"
	"github.com/pipit-dev/pipit/internal/spec"
)

// Limits of the Kubernetes client. A command is answered by the
// controller, not by the API server, so it gets its own, longer bound.
const (
	// kubeCallTimeout bounds one call to the API server.
	kubeCallTimeout = 10 * time.Second
	// answerTimeout bounds the wait for the controller's answer to a command.
	answerTimeout = 60 * time.Second
	// answerPoll is the time between two looks for that answer.
	answerPoll = 200 * time.Millisecond
	// withdrawTimeout bounds taking back a command nobody answered.
	withdrawTimeout = 10 * time.Second
)

// conflictBackoff paces the tries of taking back a command that lost a
// race with the controller's answer.
var conflictBackoff = wait.Backoff{Steps: 8, Duration: 20 * time.Millisecond, Factor: 2, Jitter: 0.2, Cap: time.Second}

// KubeOptions pick the cluster and the namespace as kubectl's flags do.
type KubeOptions struct {
	// Kubeconfig is the kubeconfig file; empty follows client-go's loading
	// rules: $KUBECONFIG, else ~/.kube/config, else the in-cluster config.
	Kubeconfig string
	// Context is the kubeconfig context to use; empty is the current one.
	Context string
	// Namespace holds the Rollouts; empty is the context's namespace, else
	// "default".
	Namespace string
	// Clock times the wait for the controller's answer to a command; nil
	// is the wall clock.
	Clock rollout.Clock
	// Log receives the API server's warnings and debug details; nil
	// discards them.
	Log *slog.Logger
}

// Kube is a controlapi.Backend over a Kubernetes API server. It reads
// Rollouts, and creates RolloutCommands for the pipit controller, which
// acts on them and answers in their status: the API server is the only
// channel between the CLI and the controller, and its RBAC and admission
// decide who may ask what.
type Kube struct {
	c         ctrlclient.Client
	namespace string
	// server is the API server's address, for messages.
	server string
	clock  rollout.Clock
	log    *slog.Logger

	userMu sync.Mutex
	// user is the name the API server knows this client as, once asked.
	user string
}

var (
	_ controlapi.Backend      = (*Kube)(nil)
	_ controlapi.SampleReader = (*Kube)(nil)
)

// NewKube returns a client of the Rollouts in the cluster and namespace
// that opts pick. It does not contact the cluster, so an error is a
// problem of the options or of the kubeconfig.
func NewKube(opts KubeOptions) (*Kube, error) {
	if opts.Namespace != "" {
		if errs := validation.IsDNS1123Label(opts.Namespace); len(errs) > 0 {
			return nil, fmt.Errorf("namespace %q: %s", opts.Namespace, strings.Join(errs, "; "))
		}
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = opts.Kubeconfig
	overrides := &clientcmd.ConfigOverrides{CurrentContext: opts.Context}
	overrides.Context.Namespace = opts.Namespace
	loader := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides)
	cfg, err := loader.ClientConfig()
	if clientcmd.IsEmptyConfig(err) {
		return nil, errors.New("no kubeconfig found: give --kubeconfig, set KUBECONFIG or write ~/.kube/config")
	}
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	ns, _, err := loader.Namespace()
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	// Warnings of the API server (a deprecated field, say) go to the CLI's
	// log rather than to controller-runtime's, which nobody set up here.
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg.WarningHandlerWithContext = slogWarnings{log}
	scheme, err := kubeScheme()
	if err != nil {
		return nil, err
	}
	c, err := ctrlclient.New(cfg, ctrlclient.Options{Scheme: scheme})
	if err != nil {
		return nil, fmt.Errorf("Kubernetes client for %s: %w", cfg.Host, err)
	}
	return &Kube{c: c, namespace: ns, server: cfg.Host, clock: rollout.ClockOrSystem(opts.Clock), log: log}, nil
}

// Namespace is the namespace whose Rollouts k reads and steers.
func (k *Kube) Namespace() string { return k.namespace }

// Server is the address of k's API server.
func (k *Kube) Server() string { return k.server }

// kubeScheme knows the Rollout types and the SelfSubjectReview.
func kubeScheme() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	if err := v1alpha1.AddToScheme(s); err != nil {
		return nil, fmt.Errorf("registering %s: %w", v1alpha1.APIVersion, err)
	}
	if err := authenticationv1.AddToScheme(s); err != nil {
		return nil, fmt.Errorf("registering authentication.k8s.io/v1: %w", err)
	}
	return s, nil
}

// Rollouts lists the namespace's Rollouts, sorted by name.
func (k *Kube) Rollouts(ctx context.Context) ([]controlapi.RolloutView, error) {
	ctx, cancel := context.WithTimeout(ctx, kubeCallTimeout)
	defer cancel()
	var list v1alpha1.RolloutList
	if err := k.c.List(ctx, &list, ctrlclient.InNamespace(k.namespace)); err != nil {
		return nil, k.apiError(err, "list rollouts in namespace "+k.namespace)
	}
	slices.SortFunc(list.Items, func(a, b v1alpha1.Rollout) int { return strings.Compare(a.Name, b.Name) })
	views := make([]controlapi.RolloutView, 0, len(list.Items))
	for i := range list.Items {
		views = append(views, k.view(&list.Items[i]))
	}
	return views, nil
}

// Rollout returns one Rollout of the namespace.
func (k *Kube) Rollout(ctx context.Context, name string) (controlapi.RolloutView, error) {
	r, err := k.get(ctx, name)
	if err != nil {
		return controlapi.RolloutView{}, err
	}
	return k.view(r), nil
}

// Events returns the history the controller keeps in the Rollout's status,
// oldest first: all of it when limit <= 0, else the most recent limit.
func (k *Kube) Events(ctx context.Context, name string, limit int) ([]v1alpha1.Event, error) {
	r, err := k.get(ctx, name)
	if err != nil {
		return nil, err
	}
	evs := r.Status.History
	if limit > 0 && limit < len(evs) {
		evs = evs[len(evs)-limit:]
	}
	return evs, nil
}

// Samples returns the results of metric (of every metric when it is
// empty) from the checks made at or after since, oldest first, out of
// those the controller keeps in the Rollout's status.recentChecks: the
// last 60, without their messages.
func (k *Kube) Samples(ctx context.Context, name, metric string, since time.Time) ([]controlapi.Sample, error) {
	r, err := k.get(ctx, name)
	if err != nil {
		return nil, err
	}
	var out []controlapi.Sample
	for _, check := range r.Status.RecentChecks {
		if check.At.Time.Before(since) {
			continue
		}
		for _, res := range check.Results {
			if metric == "" || res.Name == metric {
				out = append(out, controlapi.Sample{At: check.At.Time, MetricResult: res})
			}
		}
	}
	return out, nil
}

// Submit creates a RolloutCommand for cmd, in the name of the user the
// API server knows this client as, and waits for the controller's answer
// in its status. A command nobody answered within the time allowed is
// deleted, so that it is never applied later by surprise.
func (k *Kube) Submit(ctx context.Context, name string, cmd rollout.Command) (controlapi.RolloutView, error) {
	r, err := k.get(ctx, name)
	if err != nil {
		return controlapi.RolloutView{}, err
	}
	if cmd.Kind == rollout.CommandDeploy {
		return controlapi.RolloutView{}, &controlapi.RefusedError{Reason: deployRefusal(r)}
	}
	// The rollout's state is checked first, so that an impossible command
	// is refused at once with the engine's own reason.
	if err := engine.Allowed(r.Status, cmd); err != nil {
		return controlapi.RolloutView{}, &controlapi.RefusedError{Reason: err.Error()}
	}
	user, err := k.User(ctx)
	if err != nil {
		return controlapi.RolloutView{}, err
	}
	created, err := k.create(ctx, r, cmd, user)
	if err != nil {
		return controlapi.RolloutView{}, err
	}
	k.log.DebugContext(ctx, "command created for the controller", "rollout", name, "namespace", k.namespace,
		"verb", cmd.Kind, "rolloutcommand", created.Name, "user", user)
	return k.await(ctx, created)
}

// deployRefusal explains where a new version comes from in Kubernetes.
func deployRefusal(r *v1alpha1.Rollout) string {
	target := "the Rollout's target Deployment"
	switch {
	case r.Spec.TargetRef != nil:
		target = "deployment/" + r.Spec.TargetRef.Name
	case len(r.Spec.TargetRefs) > 0:
		target = "deployment/" + r.Spec.TargetRefs[0].Name
	}
	return fmt.Sprintf("in Kubernetes a new version is a new pod template: change %s (`kubectl set image %s CONTAINER=IMAGE`, "+
		"or in Git with GitOps) and the pipit controller rolls it out", target, target)
}

// User returns the name the API server authenticates this client as,
// asked once with a SelfSubjectReview: it is the requestedBy of the
// commands, which the admission policy checks against the same name.
func (k *Kube) User(ctx context.Context) (string, error) {
	k.userMu.Lock()
	defer k.userMu.Unlock()
	if k.user != "" {
		return k.user, nil
	}
	ctx, cancel := context.WithTimeout(ctx, kubeCallTimeout)
	defer cancel()
	review := &authenticationv1.SelfSubjectReview{}
	if err := k.c.Create(ctx, review); err != nil {
		return "", k.apiError(err, "ask the API server who this kubeconfig's user is (SelfSubjectReview)")
	}
	if review.Status.UserInfo.Username == "" {
		return "", fmt.Errorf("the API server at %s did not say who this kubeconfig's user is (SelfSubjectReview): "+
			"commands need a named user", k.server)
	}
	k.user = review.Status.UserInfo.Username
	return k.user, nil
}

// create creates the RolloutCommand asking for cmd, owned by r so that
// it goes with it.
func (k *Kube) create(ctx context.Context, r *v1alpha1.Rollout, cmd rollout.Command, user string) (*v1alpha1.RolloutCommand, error) {
	ctx, cancel := context.WithTimeout(ctx, kubeCallTimeout)
	defer cancel()
	c := &v1alpha1.RolloutCommand{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName: r.Name + "-" + string(cmd.Kind) + "-",
			Namespace:    k.namespace,
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: v1alpha1.APIVersion, Kind: v1alpha1.KindRollout, Name: r.Name, UID: r.UID,
			}},
		},
		Spec: v1alpha1.RolloutCommandSpec{Rollout: r.Name, Verb: v1alpha1.CommandVerb(cmd.Kind), Weight: cmd.Weight,
			Reason: cmd.Reason, RequestedBy: user},
	}
	if err := k.c.Create(ctx, c); err != nil {
		return nil, k.apiError(err, fmt.Sprintf("create the %s command of rollout %s", cmd.Kind, r.Name))
	}
	return c, nil
}

// await polls the command until the controller answers it, the answer
// timeout passes or ctx ends, all timed on k's clock.
func (k *Kube) await(ctx context.Context, cmd *v1alpha1.RolloutCommand) (controlapi.RolloutView, error) {
	start := k.clock.Now()
	timeout := k.clock.NewTimer(answerTimeout)
	defer timeout.Stop()
	poll := k.clock.NewTimer(answerPoll)
	defer poll.Stop()
	var lastErr error
	for {
		select {
		case <-ctx.Done():
			return k.giveUp(ctx, cmd, k.clock.Now().Sub(start), lastErr)
		case <-timeout.C():
			return k.giveUp(ctx, cmd, k.clock.Now().Sub(start), lastErr)
		case <-poll.C():
		}
		got, err := k.getCommand(ctx, cmd)
		if err != nil && !errors.Is(err, controlapi.ErrNotFound) {
			// A look that failed may succeed next time; the wait is bounded.
			lastErr = err
		} else if view, done, err := k.answer(ctx, cmd, got); done {
			return view, err
		}
		// The next look is a poll interval after this one has ended.
		poll.Reset(answerPoll)
	}
}

// getCommand reads cmd again; nil when it is gone.
func (k *Kube) getCommand(ctx context.Context, cmd *v1alpha1.RolloutCommand) (*v1alpha1.RolloutCommand, error) {
	ctx, cancel := context.WithTimeout(ctx, kubeCallTimeout)
	defer cancel()
	got := &v1alpha1.RolloutCommand{}
	err := k.c.Get(ctx, ctrlclient.ObjectKeyFromObject(cmd), got)
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, k.apiError(err, "get RolloutCommand "+cmd.Name)
	}
	return got, nil
}

// answer turns the command as read into Submit's answer, when there is
// one: the rollout as the command left it, or the engine's refusal.
func (k *Kube) answer(ctx context.Context, cmd, got *v1alpha1.RolloutCommand) (view controlapi.RolloutView, done bool, err error) {
	switch {
	case got == nil:
		return controlapi.RolloutView{}, true, fmt.Errorf("RolloutCommand %s was deleted before the controller answered it "+
			"(was rollout %s deleted?)", cmd.Name, cmd.Spec.Rollout)
	case !got.Status.Consumed:
		return controlapi.RolloutView{}, false, nil
	case got.Status.Result == v1alpha1.CommandRefused:
		return controlapi.RolloutView{}, true, &controlapi.RefusedError{Reason: got.Status.Message}
	}
	r, err := k.get(ctx, cmd.Spec.Rollout)
	if err != nil {
		return controlapi.RolloutView{}, true, err
	}
	return k.view(r), true, nil
}

// giveUp deletes a command nobody answered, unless the controller
// answered it meanwhile, and says why it gave up.
func (k *Kube) giveUp(ctx context.Context, cmd *v1alpha1.RolloutCommand, waited time.Duration, lastErr error) (controlapi.RolloutView, error) {
	why := fmt.Sprintf("the controller did not answer within %s: is pipit controller running?", seconds(waited))
	if errors.Is(ctx.Err(), context.Canceled) {
		why = fmt.Sprintf("stopped waiting for the controller's answer after %s", seconds(waited))
	}
	if lastErr != nil {
		why += fmt.Sprintf(" (last look at the command: %v)", lastErr)
	}
	// The caller's context is over; taking the command back is worth a
	// few more seconds of its own.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), withdrawTimeout)
	defer cancel()
	var answered *v1alpha1.RolloutCommand
	err := retry.OnError(conflictBackoff, apierrors.IsConflict, func() error {
		got, err := k.getCommand(wctx, cmd)
		if err != nil || got == nil || got.Status.Consumed {
			answered = got
			return err
		}
		dctx, dcancel := context.WithTimeout(wctx, kubeCallTimeout)
		defer dcancel()
		// Deleted only as read: an answer written meanwhile is a conflict,
		// and the next try reads it.
		return k.c.Delete(dctx, got, ctrlclient.Preconditions{UID: &got.UID, ResourceVersion: &got.ResourceVersion})
	})
	switch {
	case err != nil && !apierrors.IsNotFound(err):
		return controlapi.RolloutView{}, fmt.Errorf("%s; the %s command (RolloutCommand %s) could not be taken back (%v) and may still be applied later",
			why, cmd.Spec.Verb, cmd.Name, err)
	case answered != nil:
		view, _, err := k.answer(wctx, cmd, answered)
		return view, err
	}
	return controlapi.RolloutView{}, fmt.Errorf("%s; the %s command was taken back", why, cmd.Spec.Verb)
}

// seconds writes a wait as people say it: "60s", "1500ms".
func seconds(d time.Duration) string {
	if d >= 10*time.Second {
		return fmt.Sprintf("%ds", d.Round(time.Second)/time.Second)
	}
	return d.Round(100 * time.Millisecond).String()
}

// get reads one Rollout; a name no Rollout can have is simply not found.
func (k *Kube) get(ctx context.Context, name string) (*v1alpha1.Rollout, error) {
	if len(validation.IsDNS1123Subdomain(name)) > 0 {
		return nil, k.notFound(name)
	}
	ctx, cancel := context.WithTimeout(ctx, kubeCallTimeout)
	defer cancel()
	r := &v1alpha1.Rollout{}
	err := k.c.Get(ctx, ctrlclient.ObjectKey{Namespace: k.namespace, Name: name}, r)
	if apierrors.IsNotFound(err) {
		return nil, k.notFound(name)
	}
	if err != nil {
		return nil, k.apiError(err, "get rollout "+name)
	}
	return r, nil
}

func (k *Kube) notFound(name string) error {
	return &wrapped{msg: fmt.Sprintf("rollout %q not found in namespace %s", name, k.namespace), err: controlapi.ErrNotFound}
}

// apiError says what went wrong in the words of the person at the
// terminal: a cluster without the CRD, a server out of reach, or the
// API server's own answer.
func (k *Kube) apiError(err error, doing string) error {
	var status apierrors.APIStatus
	var urlErr *url.Error
	switch {
	case meta.IsNoMatchError(err):
		return fmt.Errorf("%s: the cluster at %s has no Rollout resource (%s); install pipit's CRD first "+
			"(kubectl apply -f deploy/kubernetes/crd/): %w", doing, k.server, v1alpha1.APIVersion, err)
	case !errors.As(err, &status) && errors.As(err, &urlErr):
		return fmt.Errorf("%s: cannot reach the Kubernetes API server at %s: %w", doing, k.server, err)
	}
	return fmt.Errorf("%s: %w", doing, err)
}

// view renders a Rollout for people. A spec that does not resolve still
// shows its status, without the steps.
func (k *Kube) view(r *v1alpha1.Rollout) controlapi.RolloutView {
	plan, err := spec.Resolve(&r.Spec)
	if err != nil {
		k.log.Debug("the rollout's spec does not resolve; showing its status only", "rollout", r.Name, "err", err)
		plan = spec.Plan{}
	}
	v := controlapi.NewView(r.Name, plan, r.Status)
	if bg := r.Spec.Strategy.BlueGreen; bg != nil && bg.PreviewService != "" {
		v.Preview = "Service " + bg.PreviewService
	}
	return v
}

// slogWarnings logs the API server's warnings.
type slogWarnings struct{ log *slog.Logger }

// HandleWarningHeaderWithContext logs one warning.
func (w slogWarnings) HandleWarningHeaderWithContext(ctx context.Context, _ int, _ string, text string) {
	w.log.WarnContext(ctx, "Kubernetes API server warning", "warning", text)
}
