package routertest

import (
	"fmt"
	"slices"
	"testing"

	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/router"
)

// envoyRoles checks that each backendRef of route carries the role
// header of the Service it sends to, once, next to the user's headers
// given by Service, and that the apex carries none.
func envoyRoles(t *testing.T, route *gatewayv1.HTTPRoute, user map[string][]gatewayv1.HTTPHeader) {
	t.Helper()
	roles := map[gatewayv1.ObjectName]string{"web-stable": "stable", "web-canary": "canary"}
	for i, r := range route.Spec.Rules {
		for j, b := range r.BackendRefs {
			var set []gatewayv1.HTTPHeader
			for _, f := range b.Filters {
				if f.RequestHeaderModifier != nil {
					set = append(set, f.RequestHeaderModifier.Set...)
				}
			}
			want := slices.Clone(user[string(b.Name)])
			if role := roles[b.Name]; role != "" {
				want = append(want, gatewayv1.HTTPHeader{Name: router.RoleHeader, Value: role})
			}
			if !equality.Semantic.DeepEqual(set, want) {
				t.Errorf("rule %d backendRef %d (%s) sets headers %+v, want %+v", i, j, b.Name, set, want)
			}
		}
	}
}

// TestGatewayAPIEnvoyGateway: for Envoy Gateway every backendRef to a
// version carries pipit's role header, merged into the user's own
// RequestHeaderModifier (the API server allows one), and the router
// names the Envoy cluster of each by its rule and backendRef in the
// route as written, pipit's rules included; Remove takes the header out.
func TestGatewayAPIEnvoyGateway(t *testing.T) {
	c, cl := clusterClient(t)
	ns := c.Namespace(t)
	ro, plan := createRollout(t, cl, ns, &v1alpha1.KubernetesRouter{GatewayAPI: &v1alpha1.GatewayAPIRouter{
		HTTPRoute: "shop", Implementation: v1alpha1.EnvoyGateway,
	}}, &v1alpha1.TrafficSpec{Rules: []v1alpha1.TrafficRule{
		{Name: "beta", To: v1alpha1.DestinationCanary, Headers: map[string]v1alpha1.StringMatch{"X-Beta": {Exact: "1"}}},
		{Name: "optout", To: v1alpha1.DestinationStable, Headers: map[string]v1alpha1.StringMatch{"X-Optout": {Exact: "1"}}},
	}})
	user := userAppRoute(ns)
	backend := []gatewayv1.HTTPHeader{{Name: "X-Backend", Value: "web"}}
	user.Spec.Rules[1].BackendRefs[0].Filters = []gatewayv1.HTTPRouteFilter{{
		Type:                  gatewayv1.HTTPRouteFilterRequestHeaderModifier,
		RequestHeaderModifier: &gatewayv1.HTTPHeaderFilter{Set: backend},
	}}
	create(t, cl, user)
	stored := user.DeepCopy()
	g := router.NewGatewayAPI(cl, ro, plan, nil)
	cluster := func(rule, ref int) string { return fmt.Sprintf("httproute/%s/shop/rule/%d/backend/%d", ns, rule, ref) }
	users := map[string][]gatewayv1.HTTPHeader{"web-stable": backend, "web-canary": backend}

	must(t, "SetWeight 10%", g.SetWeight(callCtx(t), v1alpha1.PercentOf(10), true))
	route := &gatewayv1.HTTPRoute{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "shop"}}
	get(t, cl, route)
	if got := ruleNames(route); got != "pipit-beta,pipit-optout,assets,app" {
		t.Fatalf("rules %q", got)
	}
	envoyRoles(t, route, users)
	want := router.EnvoyClusters{Stable: []string{cluster(1, 0), cluster(3, 0)}, Canary: []string{cluster(0, 0), cluster(3, 1)}}
	if got := g.EnvoyClusters(); !equality.Semantic.DeepEqual(got, want) {
		t.Errorf("clusters %+v, want %+v", got, want)
	}
	version := route.ResourceVersion
	must(t, "SetWeight 10% again", g.SetWeight(callCtx(t), v1alpha1.PercentOf(10), true))
	get(t, cl, route)
	if route.ResourceVersion != version {
		t.Errorf("a second Apply of the same weight rewrote the route")
	}

	must(t, "SetWeight at the end", g.SetWeight(callCtx(t), 0, false))
	get(t, cl, route)
	envoyRoles(t, route, users)
	want = router.EnvoyClusters{Stable: []string{cluster(1, 0)}, Canary: []string{cluster(1, 1)}}
	if got := g.EnvoyClusters(); !equality.Semantic.DeepEqual(got, want) {
		t.Errorf("clusters after the rollout %+v, want %+v", got, want)
	}

	must(t, "Remove", g.Remove(callCtx(t)))
	get(t, cl, route)
	if !equality.Semantic.DeepEqual(route.Spec, stored.Spec) {
		t.Errorf("after Remove\n%+v\nwant the route as the user wrote it\n%+v", route.Spec.Rules, stored.Spec.Rules)
	}
}
