package engine

import (
	"errors"
	"testing"

	"github.com/pipit-dev/pipit/api/v1alpha1"
)

// phases returns a decide function that leaves the rollout in each phase
// in turn, and counts its calls.
func phases(calls *int, ps ...v1alpha1.Phase) func() (v1alpha1.Phase, error) {
	return func() (v1alpha1.Phase, error) {
		p := ps[min(*calls, len(ps)-1)]
		*calls++
		return p, nil
	}
}

func TestSettle(t *testing.T) {
	cases := []struct {
		name    string
		phases  []v1alpha1.Phase
		calls   int
		settled bool
	}{
		{"a stable phase takes one decision", []v1alpha1.Phase{v1alpha1.PhaseProgressing}, 1, true},
		{"a promotion completes in the same tick", []v1alpha1.Phase{v1alpha1.PhasePromoting, v1alpha1.PhaseSucceeded}, 2, true},
		{"a rollback completes in the same tick", []v1alpha1.Phase{v1alpha1.PhaseRollingBack, v1alpha1.PhaseRolledBack}, 2, true},
		{"a promotion the target has not carried out waits", []v1alpha1.Phase{v1alpha1.PhasePromoting}, maxSettleDecisions, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			settled, err := Settle(phases(&calls, tc.phases...))
			if err != nil || settled != tc.settled || calls != tc.calls {
				t.Errorf("settled %v after %d decisions (err %v), want %v after %d", settled, calls, err, tc.settled, tc.calls)
			}
		})
	}
}

func TestSettleStopsAtTheFirstError(t *testing.T) {
	calls := 0
	boom := errors.New("saving status: disk full")
	_, err := Settle(func() (v1alpha1.Phase, error) {
		calls++
		return v1alpha1.PhasePromoting, boom
	})
	if !errors.Is(err, boom) || calls != 1 {
		t.Errorf("err %v after %d decisions, want the error after the first", err, calls)
	}
}
