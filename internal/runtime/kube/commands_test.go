package kube

import (
	"errors"
	"slices"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/rollout"
)

// queuedCommand is a RolloutCommand to web created at second sec.
func queuedCommand(name string, sec int, verb v1alpha1.CommandVerb) v1alpha1.RolloutCommand {
	return v1alpha1.RolloutCommand{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop", UID: types.UID("uid-" + name),
			CreationTimestamp: metav1.NewTime(time.Date(2026, 7, 1, 12, 0, sec, 0, time.UTC))},
		Spec: v1alpha1.RolloutCommandSpec{Rollout: "web", Verb: verb, RequestedBy: "alice", Reason: name},
	}
}

// TestCommandQueueOrderAnswersAndExpiry: commands are applied in the
// order they were created (by name within a second), in the name of who
// asked; one consumed is never taken again, even from a stale list; one
// a saved decision consumed before a restart is answered, not applied;
// answered ones expire after commandTTL.
func TestCommandQueueOrderAnswersAndExpiry(t *testing.T) {
	now := time.Date(2026, 7, 1, 13, 0, 0, 0, time.UTC)
	late, b, a := queuedCommand("late", 9, "abort"), queuedCommand("b", 3, "pause"), queuedCommand("a", 3, "resume")
	restarted := queuedCommand("restarted", 1, "promote")
	old := queuedCommand("old", 0, "promote")
	old.Status = v1alpha1.RolloutCommandStatus{Consumed: true, ConsumedAt: &metav1.Time{Time: now.Add(-commandTTL - time.Minute)}}
	recent := queuedCommand("recent", 0, "promote")
	recent.Status = v1alpha1.RolloutCommandStatus{Consumed: true, ConsumedAt: &metav1.Time{Time: now.Add(-time.Minute)}}

	var q commandQueue
	expired := q.take([]v1alpha1.RolloutCommand{late, b, old, recent, a, restarted}, []string{"uid-restarted"}, now)
	if len(expired) != 1 || expired[0].Name != "old" {
		t.Errorf("expired %v, want old only", expired)
	}
	var kinds []rollout.CommandKind
	for _, p := range q.pending() {
		if p.Actor != "alice" {
			t.Errorf("command %d's actor %q, want who asked", p.ID, p.Actor)
		}
		kinds = append(kinds, p.Kind)
	}
	if want := []rollout.CommandKind{"resume", "pause", "abort"}; !slices.Equal(kinds, want) {
		t.Errorf("pending %v, want %v", kinds, want)
	}
	if len(q.answers) != 1 || q.answers[0].key.Name != "restarted" || !q.answers[0].status.Consumed {
		t.Errorf("answers %+v, want restarted's, consumed without being applied again", q.answers)
	}
	if uids := q.uids([]int64{1, 3}); !slices.Equal(uids, []string{"uid-a", "uid-late"}) {
		t.Errorf("uids %v", uids)
	}
	q.answer(1, nil)
	q.answer(3, errors.New("cannot abort"))
	got := map[string]v1alpha1.RolloutCommandStatus{}
	for _, ans := range q.answers {
		got[ans.key.Name] = ans.status
	}
	if st := got["a"]; st.Result != v1alpha1.CommandApplied || !st.Consumed || !st.ConsumedAt.Time.Equal(now) {
		t.Errorf("a's answer %+v, want Applied now", st)
	}
	if st := got["late"]; st.Result != v1alpha1.CommandRefused || st.Message != "cannot abort" {
		t.Errorf("late's answer %+v, want Refused with the reason", st)
	}
	// The next list still shows them unanswered (the cache lags): only b
	// is pending.
	q.take([]v1alpha1.RolloutCommand{late, b, a}, nil, now)
	if p := q.pending(); len(p) != 1 || p[0].Kind != "pause" {
		t.Errorf("pending after the answers %+v, want b's pause only", p)
	}
}
