package router

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/pipit-dev/pipit/api/v1alpha1"
)

// scaler records the weights it was asked for and fails while err is set.
type scaler struct {
	calls []v1alpha1.Percent
	err   error
}

func (s *scaler) ScaleForWeight(_ context.Context, w v1alpha1.Percent) error {
	s.calls = append(s.calls, w)
	return s.err
}

func TestReplicas(t *testing.T) {
	s := &scaler{}
	r := &Replicas{Scaler: s}
	ctx := testCtx(t)
	if err := r.SetWeight(ctx, 20_000, true); err != nil {
		t.Fatal(err)
	}
	if r.Weight() != 20_000 {
		t.Errorf("Weight() = %s, want 20%%", r.Weight())
	}
	s.err = errors.New("no quota")
	if err := r.SetWeight(ctx, 40_000, true); !errors.Is(err, s.err) {
		t.Fatalf("err = %v, want the scaler's", err)
	}
	if r.Weight() != 20_000 {
		t.Errorf("Weight() = %s after a failed Apply, want the last applied 20%%", r.Weight())
	}
	s.err = nil
	if err := r.SetWeight(ctx, 40_000, false); err != nil {
		t.Fatal(err)
	}
	if err := r.Remove(ctx); err != nil {
		t.Fatal(err)
	}
	if want := []v1alpha1.Percent{20_000, 40_000, 0}; !slices.Equal(s.calls, want) {
		t.Errorf("scaled for %v, want %v (none once the canary is not live, nothing on Remove)", s.calls, want)
	}
	if r.Weight() != 0 {
		t.Errorf("Weight() = %s, want 0", r.Weight())
	}
	if err := r.SetWeight(ctx, v1alpha1.FullWeight+1, true); err == nil {
		t.Error("a weight above 100% was accepted")
	}
}
