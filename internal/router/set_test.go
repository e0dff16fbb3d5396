package router

import (
	"context"
	"errors"
	"reflect"
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

// TestSetEnvoyClusters: the set names the Envoy clusters of each of its
// routers through Envoy Gateway, in order, and of no other.
func TestSetEnvoyClusters(t *testing.T) {
	c := newFakeClient(t, nil)
	var routers []rollout.RouteRemover
	for _, name := range []string{"web", "api", "plain"} {
		ro := gatewayRollout(name, nil)
		if name != "plain" {
			ro.Spec.Kubernetes.Router.GatewayAPI.Implementation = v1alpha1.EnvoyGateway
		}
		p := plan(ro)
		p.StableService, p.CanaryService = name+"-stable", name+"-canary"
		g := NewGatewayAPI(c, ro, p, nil)
		if err := g.SetWeight(testCtx(t), 5000, true); err != nil {
			t.Fatal(err)
		}
		routers = append(routers, g)
	}
	routers = append(routers, &Replicas{})
	got := NewSet([]string{"web", "api", "plain", "worker"}, routers).EnvoyClusters()
	want := EnvoyClusters{
		Stable: []string{"httproute/" + testNamespace + "/web/rule/0/backend/0", "httproute/" + testNamespace + "/api/rule/0/backend/0"},
		Canary: []string{"httproute/" + testNamespace + "/web/rule/0/backend/1", "httproute/" + testNamespace + "/api/rule/0/backend/1"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("clusters %+v, want %+v", got, want)
	}
}
