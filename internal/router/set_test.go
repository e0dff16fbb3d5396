package router

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/rollout"
)

// fakeRouter applies weights unless told to fail.
type fakeRouter struct {
	weight  v1alpha1.Percent
	err     error
	removed bool
}

func (f *fakeRouter) SetWeight(_ context.Context, w v1alpha1.Percent, canaryLive bool) error {
	if f.err != nil {
		return f.err
	}
	if !canaryLive {
		w = 0
	}
	f.weight = w
	return nil
}

func (f *fakeRouter) Weight() v1alpha1.Percent { return f.weight }

func (f *fakeRouter) Remove(context.Context) error {
	f.removed = true
	return f.err
}

// TestSetWeight checks that every router gets the weight even when one
// fails, that the error names the failing Deployment, and that the set's
// weight is zero only once every router's is.
func TestSetWeight(t *testing.T) {
	fe, be := &fakeRouter{}, &fakeRouter{}
	set := NewSet([]string{"frontend", "backend"}, []rollout.RouteRemover{fe, be})
	if err := set.SetWeight(t.Context(), v1alpha1.PercentOf(20), true); err != nil {
		t.Fatal(err)
	}
	if fe.weight != v1alpha1.PercentOf(20) || be.weight != v1alpha1.PercentOf(20) || set.Weight() != v1alpha1.PercentOf(20) {
		t.Errorf("weights %s, %s, set %s; want 20%% everywhere", fe.weight, be.weight, set.Weight())
	}
	fe.err = errors.New("route refused")
	err := set.SetWeight(t.Context(), 0, false)
	if err == nil || !strings.Contains(err.Error(), "router of Deployment frontend: route refused") {
		t.Errorf("rollback with a failing router: %v", err)
	}
	if be.weight != 0 {
		t.Errorf("the backend's weight is %s: the rollback stopped at the failing frontend", be.weight)
	}
	if set.Weight() != v1alpha1.PercentOf(20) {
		t.Errorf("set weight %s while the frontend still sends 20%% to the canary", set.Weight())
	}
	if err := set.Remove(t.Context()); err == nil || !fe.removed || !be.removed {
		t.Errorf("remove: %v, removed %v %v", err, fe.removed, be.removed)
	}
	one := NewSet([]string{"web"}, []rollout.RouteRemover{fe})
	if err := one.SetWeight(t.Context(), 0, true); err != fe.err {
		t.Errorf("a set of one: %v, want the router's own error", err)
	}
}
