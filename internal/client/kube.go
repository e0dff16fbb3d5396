package client

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
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
	// answerGrace bounds the time between the controller taking a command
	// out of status.commands and its answer appearing in
	// status.commandResults, which it may write separately.
	answerGrace = 5 * time.Second
	// withdrawTimeout bounds taking back a command nobody answered.
	withdrawTimeout = 10 * time.Second
	// maxWaitingCommands is what status.commands holds at most (the CRD's
	// maxItems): more waiting means the controller is not consuming them.
	maxWaitingCommands = 100
)

// conflictBackoff paces the tries of a status write that lost a race with
// the controller, which writes the status at every step of the rollout.
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
// Rollouts, and leaves commands in their status for the pipit controller,
// which acts on them and answers there: the API server is the only
// channel between the CLI and the controller.
type Kube struct {
	c         ctrlclient.Client
	namespace string
	// server is the API server's address, for messages.
	server string
	clock  rollout.Clock
	log    *slog.Logger
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

// kubeScheme knows the Rollout types.
func kubeScheme() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	if err := v1alpha1.AddToScheme(s); err != nil {
		return nil, fmt.Errorf("registering %s: %w", v1alpha1.APIVersion, err)
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

// Samples always fails, with an error wrapping errors.ErrUnsupported: a
// cluster keeps only the last check's results, in the Rollout's status.
func (k *Kube) Samples(context.Context, string, string, time.Time) ([]controlapi.Sample, error) {
	return nil, fmt.Errorf("analysis samples are not available on Kubernetes: a cluster keeps only the last check's results, in the Rollout's status.analysis.lastResults; the standalone daemon (pipit up) keeps every check's: %w",
		errors.ErrUnsupported)
}

// Submit leaves cmd in the Rollout's status.commands and waits for the
// controller's answer in status.commandResults. A command nobody answered
// within the time allowed is taken back, so that it is never applied
// later by surprise.
func (k *Kube) Submit(ctx context.Context, name string, cmd rollout.Command) (controlapi.RolloutView, error) {
	r, err := k.get(ctx, name)
	if err != nil {
		return controlapi.RolloutView{}, err
	}
	if cmd.Kind == rollout.CommandDeploy {
		return controlapi.RolloutView{}, &controlapi.RefusedError{Reason: deployRefusal(r)}
	}
	req := v1alpha1.CommandRequest{ID: rand.Text(), Kind: string(cmd.Kind), Weight: cmd.Weight, Actor: cmd.Actor, Reason: cmd.Reason}
	if err := k.enqueue(ctx, r, cmd, req); err != nil {
		return controlapi.RolloutView{}, err
	}
	k.log.DebugContext(ctx, "command queued for the controller", "rollout", name, "namespace", k.namespace, "kind", req.Kind, "id", req.ID)
	return k.await(ctx, name, cmd.Kind, req.ID)
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

// enqueue appends req to status.commands, first checking that the
// rollout's state allows cmd, so an impossible command is refused at once
// with the engine's own reason. The write carries the resourceVersion
// read, so a race with the controller is a conflict, tried again on a
// fresh read, never a lost command or a lost status.
func (k *Kube) enqueue(ctx context.Context, r *v1alpha1.Rollout, cmd rollout.Command, req v1alpha1.CommandRequest) error {
	fresh := false
	return retry.OnError(conflictBackoff, apierrors.IsConflict, func() error {
		if fresh {
			var err error
			if r, err = k.get(ctx, r.Name); err != nil {
				return err
			}
		}
		fresh = true
		if err := engine.Allowed(r.Status, cmd); err != nil {
			return &controlapi.RefusedError{Reason: err.Error()}
		}
		if n := len(r.Status.Commands); n >= maxWaitingCommands {
			return &controlapi.RefusedError{Reason: fmt.Sprintf(
				"%d commands already wait for the controller: is pipit controller running?", n)}
		}
		return k.writeCommands(ctx, r, append(slices.Clone(r.Status.Commands), req))
	})
}

// writeCommands replaces r's status.commands, provided r is still the
// latest version: a merge patch of that list alone with the
// resourceVersion as a precondition, so that status fields this client
// does not know (a newer controller's) are kept.
func (k *Kube) writeCommands(ctx context.Context, r *v1alpha1.Rollout, commands []v1alpha1.CommandRequest) error {
	ctx, cancel := context.WithTimeout(ctx, kubeCallTimeout)
	defer cancel()
	patch := ctrlclient.MergeFromWithOptions(r.DeepCopy(), ctrlclient.MergeFromWithOptimisticLock{})
	r.Status.Commands = commands
	if err := k.c.Status().Patch(ctx, r, patch); err != nil {
		// Wrapped, a conflict is still one for the retry.
		return k.apiError(err, "write status.commands of rollout "+r.Name)
	}
	return nil
}

// await polls the rollout until the controller answers command id, the
// answer timeout passes or ctx ends, all timed on k's clock.
func (k *Kube) await(ctx context.Context, name string, kind rollout.CommandKind, id string) (controlapi.RolloutView, error) {
	start := k.clock.Now()
	timeout := k.clock.NewTimer(answerTimeout)
	defer timeout.Stop()
	poll := k.clock.NewTimer(answerPoll)
	defer poll.Stop()
	var lastErr error
	var takenAt time.Time
	for {
		select {
		case <-ctx.Done():
			return k.giveUp(ctx, name, kind, id, k.clock.Now().Sub(start), lastErr)
		case <-timeout.C():
			return k.giveUp(ctx, name, kind, id, k.clock.Now().Sub(start), lastErr)
		case <-poll.C():
		}
		view, done, err := k.look(ctx, name, kind, id, &takenAt)
		if done {
			return view, err
		}
		// A look that failed may succeed next time; the wait is bounded.
		lastErr = err
		// The next look is a poll interval after this one has ended.
		poll.Reset(answerPoll)
	}
}

// look reads the Rollout once for the answer to command id: done with the
// view (or the error to return) when it is answered, when the Rollout is
// gone, or when the command was taken more than answerGrace ago without an
// answer; otherwise err is why the read failed, if it did. takenAt keeps
// when the command was first seen taken.
func (k *Kube) look(ctx context.Context, name string, kind rollout.CommandKind, id string, takenAt *time.Time) (view controlapi.RolloutView, done bool, err error) {
	r, err := k.get(ctx, name)
	if errors.Is(err, controlapi.ErrNotFound) {
		return controlapi.RolloutView{}, true, fmt.Errorf("rollout %s was deleted before the controller answered the %s command", name, kind)
	}
	if err != nil {
		return controlapi.RolloutView{}, false, err
	}
	switch state, res := lookUp(r, id); state {
	case answered:
		view, err := k.result(r, res)
		return view, true, err
	case taken:
		if takenAt.IsZero() {
			*takenAt = k.clock.Now()
		}
		if k.clock.Now().Sub(*takenAt) > answerGrace {
			return controlapi.RolloutView{}, true, fmt.Errorf("the controller took the %s command, but its answer did not appear "+
				"in status.commandResults (later commands may have pushed it out); see `pipit history %s`", kind, name)
		}
	}
	return controlapi.RolloutView{}, false, nil
}

// commandState is where an operator command stands in a Rollout's status.
type commandState int

const (
	// queued: it waits in status.commands.
	queued commandState = iota
	// taken: the controller removed it from status.commands and has not
	// written its answer yet (it may do so in a later write).
	taken
	// answered: its result is in status.commandResults.
	answered
)

// lookUp finds command id in r's status.
func lookUp(r *v1alpha1.Rollout, id string) (commandState, v1alpha1.CommandResult) {
	for _, res := range r.Status.CommandResults {
		if res.ID == id {
			return answered, res
		}
	}
	if slices.ContainsFunc(r.Status.Commands, func(c v1alpha1.CommandRequest) bool { return c.ID == id }) {
		return queued, v1alpha1.CommandResult{}
	}
	return taken, v1alpha1.CommandResult{}
}

// result turns the controller's answer into Submit's: the rollout as the
// command left it, or the engine's refusal.
func (k *Kube) result(r *v1alpha1.Rollout, res v1alpha1.CommandResult) (controlapi.RolloutView, error) {
	if res.Error != "" {
		return controlapi.RolloutView{}, &controlapi.RefusedError{Reason: res.Error}
	}
	return k.view(r), nil
}

// giveUp takes back command id after nobody answered it, unless the
// controller took it meanwhile, and says why it gave up.
func (k *Kube) giveUp(ctx context.Context, name string, kind rollout.CommandKind, id string, waited time.Duration, lastErr error) (controlapi.RolloutView, error) {
	why := fmt.Sprintf("the controller did not answer within %s: is pipit controller running?", seconds(waited))
	if errors.Is(ctx.Err(), context.Canceled) {
		why = fmt.Sprintf("stopped waiting for the controller's answer after %s", seconds(waited))
	}
	if lastErr != nil {
		why += fmt.Sprintf(" (last look at the rollout: %v)", lastErr)
	}
	// The caller's context is over; taking the command back is worth a
	// few more seconds of its own.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), withdrawTimeout)
	defer cancel()
	var (
		final *v1alpha1.Rollout
		state commandState
		res   v1alpha1.CommandResult
	)
	err := retry.OnError(conflictBackoff, apierrors.IsConflict, func() error {
		r, err := k.get(wctx, name)
		if err != nil {
			return err
		}
		if state, res = lookUp(r, id); state != queued {
			final = r
			return nil
		}
		rest := slices.DeleteFunc(slices.Clone(r.Status.Commands), func(c v1alpha1.CommandRequest) bool { return c.ID == id })
		return k.writeCommands(wctx, r, rest)
	})
	switch {
	case err != nil:
		return controlapi.RolloutView{}, fmt.Errorf("%s; the %s command could not be taken back (%v) and may still be applied later", why, kind, err)
	case final != nil && state == answered:
		return k.result(final, res)
	case final != nil:
		return controlapi.RolloutView{}, fmt.Errorf("the controller took the %s command but did not answer within %s: "+
			"see `pipit history %s`", kind, seconds(waited), name)
	}
	return controlapi.RolloutView{}, fmt.Errorf("%s; the %s command was taken back", why, kind)
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
