package kube

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/rollout"
)

// Bounds of the bookkeeping lists kept in a Rollout's status, so that the
// object stays small however long it lives.
const (
	maxHistory          = 100
	maxConsumedCommands = 50
	// maxRecentChecks bounds status.recentChecks, the dashboard's charts:
	// an hour of checks at the default interval of one a minute.
	maxRecentChecks = 60
)

// deployID marks the controller's own deploy command (a new pod template)
// among the pending commands; operator commands are numbered from 1.
const deployID = -1

// ConditionStalled is kstatus' condition for a rollout that cannot go on
// without a person: an invalid spec, a missing target.
const ConditionStalled = "Stalled"

// statusStore keeps a rollout's state in its status subresource. The
// engine's decisions are written before they are carried out, like the
// standalone runtime's SQLite store; the API server is the database.
type statusStore struct {
	c      client.Client // reads through the API server, not the cache
	key    types.NamespacedName
	events eventSink

	// generation is the spec generation the plan was built from.
	generation int64
	// deploy is the controller's own pending deploy, if any.
	deploy *v1alpha1.VersionRef
	// commands are the operator's RolloutCommands waiting, and what
	// became of those consumed (see commands.go).
	commands commandQueue
	// last is the Rollout as the store's last write left it, the base of
	// the next write; nil until the first write, and after a failed one.
	last *v1alpha1.Rollout
	// targets is status.targets as the store last wrote it.
	targets []v1alpha1.TargetStatus
}

// eventSink records a rollout's transitions as Kubernetes Events.
type eventSink func(r *v1alpha1.Rollout, e v1alpha1.Event)

// Pending returns the controller's deploy, then the operators' commands.
func (s *statusStore) Pending(context.Context) ([]rollout.PendingCommand, error) {
	var out []rollout.PendingCommand
	if s.deploy != nil {
		out = append(out, rollout.PendingCommand{ID: deployID, Command: rollout.Command{
			Kind: rollout.CommandDeploy, Canary: s.deploy, Actor: "pipit",
			Reason: "new pod template " + s.deploy.Template,
		}})
	}
	return append(out, s.commands.pending()...), nil
}

// answer notes the engine's answer to a consumed command.
func (s *statusStore) answer(id int64, err error) {
	if id == deployID {
		s.deploy = nil
		return
	}
	s.commands.answer(id, err)
}

// Save writes the engine's status with the bookkeeping the controller
// owns: the consumed commands join status.consumedCommands in the same
// write as the decision they led to, the events join status.history.
func (s *statusStore) Save(ctx context.Context, st v1alpha1.RolloutStatus, events []v1alpha1.Event, consumed []int64) error {
	done := s.commands.uids(consumed)
	saved, err := s.update(ctx, func(r *v1alpha1.Rollout) {
		next := st.DeepCopy()
		next.ObservedGeneration = s.generation
		next.ConsumedCommands = keepLast(append(slices.Clone(r.Status.ConsumedCommands), done...), maxConsumedCommands)
		next.History = keepLast(append(slices.Clone(r.Status.History), events...), maxHistory)
		next.RecentChecks = withCheck(r.Status.RecentChecks, next.Analysis)
		next.Conditions = withStalled(st.Conditions, s.generation, nil)
		next.Targets = r.Status.Targets // the controller's own, written by saveTargets
		r.Status = *next
	})
	if err != nil {
		return fmt.Errorf("rollout %s: writing status: %w", s.key, err)
	}
	if s.events != nil {
		for _, e := range events {
			s.events(saved, e)
		}
	}
	return nil
}

// saveTargets writes status.targets, what each Deployment of a
// coordinated rollout runs, when it changed since the last write.
func (s *statusStore) saveTargets(ctx context.Context, targets []v1alpha1.TargetStatus) error {
	if s.targets != nil && slices.Equal(targets, s.targets) {
		return nil
	}
	_, err := s.update(ctx, func(r *v1alpha1.Rollout) { r.Status.Targets = targets })
	if err != nil {
		return fmt.Errorf("rollout %s: writing status.targets: %w", s.key, err)
	}
	s.targets = targets
	return nil
}

// update writes the status that change makes of the Rollout. The first
// try starts from the store's own last write without reading the object
// again: the API server refuses it (409 Conflict) if anyone wrote since,
// an operator's command or a spec change, and the retry starts from a
// fresh read. So a rollout that only the controller writes costs one
// request per save instead of two.
func (s *statusStore) update(ctx context.Context, change func(r *v1alpha1.Rollout)) (*v1alpha1.Rollout, error) {
	base := s.last
	s.last = nil
	err := retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		r := &v1alpha1.Rollout{}
		if base != nil {
			base.DeepCopyInto(r)
			base = nil
		} else if err := s.c.Get(ctx, s.key, r); err != nil {
			return err
		}
		change(r)
		if err := s.c.Status().Update(ctx, r); err != nil {
			return err
		}
		s.last = r
		return nil
	})
	return s.last, err
}

// stall records in the status why the controller cannot act on the
// rollout (an invalid spec, a missing target), leaving the rest of the
// status as it is: nothing is half-applied.
func stall(ctx context.Context, c client.Client, key types.NamespacedName, generation int64, reason, message string) error {
	return retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		var r v1alpha1.Rollout
		if err := c.Get(ctx, key, &r); err != nil {
			return err
		}
		cond := &metav1.Condition{Type: ConditionStalled, Status: metav1.ConditionTrue, Reason: reason, Message: message}
		conds := withStalled(r.Status.Conditions, generation, cond)
		if r.Status.Message == message && slices.EqualFunc(conds, r.Status.Conditions, sameCondition) {
			return nil
		}
		r.Status.Conditions = conds
		r.Status.Message = message
		return c.Status().Update(ctx, &r)
	})
}

// withStalled returns conds with the Stalled condition set to cond, or to
// False when cond is nil.
func withStalled(conds []metav1.Condition, generation int64, cond *metav1.Condition) []metav1.Condition {
	out := slices.Clone(conds)
	if cond == nil {
		cond = &metav1.Condition{Type: ConditionStalled, Status: metav1.ConditionFalse, Reason: "Reconciled", Message: ""}
	}
	cond.ObservedGeneration = generation
	meta.SetStatusCondition(&out, *cond)
	return out
}

func sameCondition(a, b metav1.Condition) bool {
	return a.Type == b.Type && a.Status == b.Status && a.Reason == b.Reason && a.Message == b.Message &&
		a.ObservedGeneration == b.ObservedGeneration
}

// withCheck returns the recent checks with the analysis' last check
// appended when it is newer than the latest kept, without the results'
// messages, and at most maxRecentChecks of them. A status is saved many
// times between two checks, and once more after a new rollout reset the
// analysis: neither adds a check.
func withCheck(checks []v1alpha1.AnalysisCheck, a v1alpha1.AnalysisStatus) []v1alpha1.AnalysisCheck {
	if a.LastCheckAt == nil || len(a.LastResults) == 0 {
		return checks
	}
	// The API server keeps microseconds (metav1.MicroTime's JSON): the
	// check keeps the same time, so it compares with the one read back.
	at := metav1.NewMicroTime(a.LastCheckAt.Truncate(time.Microsecond))
	if n := len(checks); n > 0 && !at.After(checks[n-1].At.Time) {
		return checks
	}
	results := slices.Clone(a.LastResults)
	for i := range results {
		results[i].Message = ""
	}
	return keepLast(append(slices.Clone(checks), v1alpha1.AnalysisCheck{At: at, Results: results}), maxRecentChecks)
}

func keepLast[T any](s []T, n int) []T {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// eventType maps an engine event's type onto Kubernetes'.
func eventType(e v1alpha1.Event) string {
	if strings.EqualFold(e.Type, v1alpha1.EventWarning) {
		return corev1.EventTypeWarning
	}
	return corev1.EventTypeNormal
}
