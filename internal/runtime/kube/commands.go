package kube

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/rollout"
)

// commandIndex indexes RolloutCommands by the Rollout they command.
const commandIndex = "spec.rollout"

// commandTTL is how long a consumed RolloutCommand is kept (for `kubectl
// get rolloutcommands`, and for a client still looking at its answer)
// before the controller deletes it. Its ownerReference to the Rollout
// has it deleted with the Rollout, sooner.
const commandTTL = time.Hour

// commandQueue holds one rollout's RolloutCommands from the list read
// before a tick to the answers written after it.
type commandQueue struct {
	// waiting are the commands not consumed yet, oldest first: the
	// runner's pending commands numbered from 1.
	waiting []v1alpha1.RolloutCommand
	// consumed remembers the UIDs of the commands consumed, so that a
	// list from a cache that lags behind the answers never applies one
	// twice.
	consumed map[types.UID]bool
	// answers wait to be written in the commands' status.
	answers []commandAnswer
	// now is the controller's time at the last take, when the answers
	// of the tick that follows are dated.
	now time.Time
}

// commandAnswer is the status one consumed command is to be given.
type commandAnswer struct {
	key    types.NamespacedName
	uid    types.UID
	status v1alpha1.RolloutCommandStatus
}

// take sorts a rollout's commands before a tick: those waiting, in the
// order they were created; those consumed in a decision saved before the
// controller stopped, without their answer, which get one now; and those
// consumed more than commandTTL ago, returned for deletion. saved is the
// Rollout's status.consumedCommands.
func (q *commandQueue) take(cmds []v1alpha1.RolloutCommand, saved []string, now time.Time) (expired []v1alpha1.RolloutCommand) {
	q.now = now
	q.waiting = q.waiting[:0]
	listed := map[types.UID]bool{}
	for _, c := range cmds {
		listed[c.UID] = true
		switch {
		case c.Status.Consumed:
			if c.Status.ConsumedAt != nil && now.Sub(c.Status.ConsumedAt.Time) > commandTTL {
				expired = append(expired, c)
			}
		case q.consumed[c.UID]:
		case slices.Contains(saved, string(c.UID)):
			q.consume(c, v1alpha1.RolloutCommandStatus{Message: "consumed before the controller restarted: " +
				"the rollout's history says what became of it"})
		default:
			q.waiting = append(q.waiting, c)
		}
	}
	// Commands that are gone need no remembering; those answered but not
	// yet written stay, as the list may predate them.
	for uid := range q.consumed {
		if !listed[uid] && !slices.ContainsFunc(q.answers, func(a commandAnswer) bool { return a.uid == uid }) {
			delete(q.consumed, uid)
		}
	}
	slices.SortFunc(q.waiting, func(a, b v1alpha1.RolloutCommand) int {
		return cmp.Or(a.CreationTimestamp.Compare(b.CreationTimestamp.Time), cmp.Compare(a.Name, b.Name))
	})
	return expired
}

// pending returns the waiting commands as the runner's, numbered from 1.
func (q *commandQueue) pending() []rollout.PendingCommand {
	out := make([]rollout.PendingCommand, 0, len(q.waiting))
	for i, c := range q.waiting {
		out = append(out, rollout.PendingCommand{ID: int64(i + 1), Command: rollout.Command{
			Kind: rollout.CommandKind(c.Spec.Verb), Weight: c.Spec.Weight, Actor: c.Spec.RequestedBy, Reason: c.Spec.Reason,
		}})
	}
	return out
}

// uids returns the UIDs of the waiting commands numbered ids.
func (q *commandQueue) uids(ids []int64) []string {
	var out []string
	for _, id := range ids {
		if id >= 1 && int(id) <= len(q.waiting) {
			out = append(out, string(q.waiting[id-1].UID))
		}
	}
	return out
}

// answer notes the engine's answer to the waiting command numbered id.
func (q *commandQueue) answer(id int64, err error) {
	if id < 1 || int(id) > len(q.waiting) {
		return
	}
	st := v1alpha1.RolloutCommandStatus{Result: v1alpha1.CommandApplied}
	if err != nil {
		st = v1alpha1.RolloutCommandStatus{Result: v1alpha1.CommandRefused, Message: err.Error()}
	}
	q.consume(q.waiting[id-1], st)
}

// consume marks c consumed, with the answer st to write in its status.
func (q *commandQueue) consume(c v1alpha1.RolloutCommand, st v1alpha1.RolloutCommandStatus) {
	if q.consumed == nil {
		q.consumed = map[types.UID]bool{}
	}
	q.consumed[c.UID] = true
	st.Consumed = true
	st.ConsumedAt = &metav1.Time{Time: q.now}
	q.answers = append(q.answers, commandAnswer{key: client.ObjectKeyFromObject(&c), uid: c.UID, status: st})
}

// flush writes the answers in the commands' status; those that could
// not be written are tried again after the next tick. A command deleted
// meanwhile needs no answer.
func (q *commandQueue) flush(ctx context.Context, c client.Client) error {
	var errs []error
	kept := q.answers[:0]
	for _, a := range q.answers {
		err := retry.RetryOnConflict(retry.DefaultBackoff, func() error {
			var cmd v1alpha1.RolloutCommand
			if err := c.Get(ctx, a.key, &cmd); err != nil {
				return err
			}
			if cmd.UID != a.uid || cmd.Status.Consumed {
				return nil
			}
			cmd.Status = a.status
			return c.Status().Update(ctx, &cmd)
		})
		if err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("RolloutCommand %s: writing its answer: %w", a.key, err))
			kept = append(kept, a)
		}
	}
	q.answers = kept
	return errors.Join(errs...)
}

// deleteExpired deletes consumed commands past commandTTL, provided they
// are still the ones listed.
func deleteExpired(ctx context.Context, c client.Client, expired []v1alpha1.RolloutCommand) error {
	var errs []error
	for i := range expired {
		cmd := &expired[i]
		err := c.Delete(ctx, cmd, client.Preconditions{UID: &cmd.UID})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			errs = append(errs, fmt.Errorf("RolloutCommand %s/%s: deleting it after %s: %w", cmd.Namespace, cmd.Name, commandTTL, err))
		}
	}
	return errors.Join(errs...)
}

// listCommands reads, through the cache, the commands to the Rollout r.
func listCommands(ctx context.Context, c client.Reader, r *v1alpha1.Rollout) ([]v1alpha1.RolloutCommand, error) {
	var list v1alpha1.RolloutCommandList
	if err := c.List(ctx, &list, client.InNamespace(r.Namespace), client.MatchingFields{commandIndex: r.Name}); err != nil {
		return nil, fmt.Errorf("listing the RolloutCommands of rollout %s/%s: %w", r.Namespace, r.Name, err)
	}
	return list.Items, nil
}

// rolloutOfCommand maps a RolloutCommand to the Rollout it commands.
func rolloutOfCommand(_ context.Context, o client.Object) []reconcile.Request {
	cmd, ok := o.(*v1alpha1.RolloutCommand)
	if !ok || cmd.Spec.Rollout == "" {
		return nil
	}
	return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: cmd.Namespace, Name: cmd.Spec.Rollout}}}
}

// indexCommands indexes RolloutCommands by the Rollout they command.
func indexCommands(o client.Object) []string {
	if cmd, ok := o.(*v1alpha1.RolloutCommand); ok && cmd.Spec.Rollout != "" {
		return []string{cmd.Spec.Rollout}
	}
	return nil
}
