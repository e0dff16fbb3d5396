package routertest

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/router"
)

// allConditions is a traffic section using every condition the Gateway
// API can express, with sticky sessions and a fractional mirror.
func allConditions() *v1alpha1.TrafficSpec {
	return &v1alpha1.TrafficSpec{
		Rules: []v1alpha1.TrafficRule{
			{Name: "Force canary", To: v1alpha1.DestinationCanary, Headers: map[string]v1alpha1.StringMatch{"Canary": {Exact: "true"}}},
			{Name: "internal", To: v1alpha1.DestinationCanary, Headers: map[string]v1alpha1.StringMatch{
				"X-User-Email": {Suffix: "@company.com"}, "X-Team": {In: []string{"a.b", "c+d"}}, "X-Present": {},
			}},
			{To: v1alpha1.DestinationStable, Cookies: map[string]v1alpha1.StringMatch{"optout": {Regex: "(?i)^yes$"}, "tier": {Prefix: "gold"}}},
			{Name: "beta", To: v1alpha1.DestinationCanary, QueryParams: map[string]v1alpha1.StringMatch{"beta": {Exact: "1"}, "v": {Prefix: "2."}}},
			{Name: "admin", To: v1alpha1.DestinationCanary, Path: &v1alpha1.StringMatch{Prefix: "/admin"}, Method: &v1alpha1.StringMatch{In: []string{"GET", "POST"}}},
			{Name: "regex path", To: v1alpha1.DestinationCanary, Path: &v1alpha1.StringMatch{Regex: "/v[0-9]+/.*"}},
		},
		StickySession: &v1alpha1.StickySession{TTL: &metav1.Duration{Duration: 30 * time.Minute}},
		Mirror:        &v1alpha1.Mirror{Percent: v1alpha1.PercentOf(2.5)},
	}
}

func routeRule(t *testing.T, route *gatewayv1.HTTPRoute, name string) gatewayv1.HTTPRouteRule {
	t.Helper()
	for _, r := range route.Spec.Rules {
		if string(ptr.Deref(r.Name, "")) == name {
			return r
		}
	}
	t.Fatalf("no rule %s in the route", name)
	return gatewayv1.HTTPRouteRule{}
}

func ruleNames(route *gatewayv1.HTTPRoute) string {
	var names []string
	for _, r := range route.Spec.Rules {
		names = append(names, string(ptr.Deref(r.Name, "")))
	}
	return strings.Join(names, ",")
}

func backendWeights(r gatewayv1.HTTPRouteRule) map[string]int32 {
	w := map[string]int32{}
	for _, b := range r.BackendRefs {
		w[string(b.Name)] = ptr.Deref(b.Weight, 1)
	}
	return w
}

// TestGatewayAPICreatesRoute: the route pipit creates, with a rule for
// each kind of condition, passes the standard channel's schema and CEL
// rules; sessionPersistence, which that schema lacks, is dropped without
// harm; a second Apply writes nothing; Remove leaves the route, which the
// Rollout's deletion takes with it.
func TestGatewayAPICreatesRoute(t *testing.T) {
	c, cl := clusterClient(t)
	ns := c.Namespace(t)
	ro, plan := createRollout(t, cl, ns, &v1alpha1.KubernetesRouter{GatewayAPI: &v1alpha1.GatewayAPIRouter{
		ParentRefs: []v1alpha1.GatewayParentRef{{Name: "public", Namespace: "infra", SectionName: "https"}},
	}}, allConditions())
	g := router.NewGatewayAPI(cl, ro, plan, nil)

	must(t, "SetWeight 2.5%", g.SetWeight(callCtx(t), v1alpha1.PercentOf(2.5), true))
	route := &gatewayv1.HTTPRoute{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"}}
	get(t, cl, route)
	if !metav1.IsControlledBy(route, ro) || route.Labels["app.kubernetes.io/managed-by"] != "pipit" {
		t.Errorf("route owners %+v, labels %v", route.OwnerReferences, route.Labels)
	}
	if got := ruleNames(route); got != "pipit-force-canary,pipit-internal,pipit-2,pipit-beta,pipit-admin,pipit-regex-path," {
		t.Fatalf("rules %q", got)
	}
	primary := route.Spec.Rules[len(route.Spec.Rules)-1]
	if w := backendWeights(primary); w["web-stable"] != 97_500 || w["web-canary"] != 2_500 {
		t.Errorf("weights %v", w)
	}
	mirror := primary.Filters[0].RequestMirror
	if mirror == nil || mirror.BackendRef.Name != "web-canary" || mirror.Fraction == nil || mirror.Fraction.Numerator != 2500 || *mirror.Fraction.Denominator != 100_000 {
		t.Errorf("filters %+v, want a mirror of 2.5%% to web-canary", primary.Filters)
	}
	if primary.SessionPersistence != nil {
		t.Errorf("sessionPersistence %+v survived the standard channel's schema: the router can keep it, update this test", primary.SessionPersistence)
	}
	cookie := routeRule(t, route, "pipit-2").Matches[0].Headers[0]
	if re := regexp.MustCompile(cookie.Value); cookie.Name != "cookie" || !re.MatchString("tier=golden; optout=YES") || re.MatchString("optout=yes") {
		t.Errorf("cookie match %+v", cookie)
	}
	if n := len(routeRule(t, route, "pipit-admin").Matches); n != 2 {
		t.Errorf("pipit-admin has %d matches, want one per method", n)
	}

	version := route.ResourceVersion
	must(t, "SetWeight 2.5% again", g.SetWeight(callCtx(t), v1alpha1.PercentOf(2.5), true))
	get(t, cl, route)
	if route.ResourceVersion != version {
		t.Errorf("a second Apply of the same weight rewrote the route (resourceVersion %s -> %s)", version, route.ResourceVersion)
	}
	must(t, "Remove", g.Remove(callCtx(t)))
	get(t, cl, route)
	if route.ResourceVersion != version {
		t.Errorf("Remove rewrote the route pipit owns, which is the garbage collector's")
	}

	must(t, "SetWeight at the end", g.SetWeight(callCtx(t), 0, false))
	get(t, cl, route)
	if got := ruleNames(route); got != "" || len(route.Spec.Rules) != 1 {
		t.Fatalf("rules %q after the rollout, want the primary one only", got)
	}
	if w := backendWeights(route.Spec.Rules[0]); w["web-stable"] != 100_000 || w["web-canary"] != 0 || len(route.Spec.Rules[0].Filters) != 0 {
		t.Errorf("weights %v and filters %+v after the rollout", w, route.Spec.Rules[0].Filters)
	}

	must(t, "delete the Rollout", cl.Delete(callCtx(t), ro, client.PropagationPolicy(metav1.DeletePropagationBackground)))
	waitGone(t, cl, route)
}

// userAppRoute is a user's HTTPRoute shop in namespace ns: a rule to
// another Service (assets) and one to the rollout's apex Service (app),
// with a filter and a timeout.
func userAppRoute(ns string) *gatewayv1.HTTPRoute {
	return &gatewayv1.HTTPRoute{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "shop"},
		Spec: gatewayv1.HTTPRouteSpec{
			CommonRouteSpec: gatewayv1.CommonRouteSpec{ParentRefs: []gatewayv1.ParentReference{{Name: "public"}}},
			Hostnames:       []gatewayv1.Hostname{"shop.example.com"},
			Rules: []gatewayv1.HTTPRouteRule{
				{
					Name:    ptr.To(gatewayv1.SectionName("assets")),
					Matches: []gatewayv1.HTTPRouteMatch{{Path: &gatewayv1.HTTPPathMatch{Value: ptr.To("/static")}}},
					BackendRefs: []gatewayv1.HTTPBackendRef{{BackendRef: gatewayv1.BackendRef{
						BackendObjectReference: gatewayv1.BackendObjectReference{Name: "assets", Port: ptr.To[int32](8080)},
					}}},
				},
				{
					Name:    ptr.To(gatewayv1.SectionName("app")),
					Matches: []gatewayv1.HTTPRouteMatch{{Path: &gatewayv1.HTTPPathMatch{Value: ptr.To("/api")}}},
					Filters: []gatewayv1.HTTPRouteFilter{{
						Type:                  gatewayv1.HTTPRouteFilterRequestHeaderModifier,
						RequestHeaderModifier: &gatewayv1.HTTPHeaderFilter{Set: []gatewayv1.HTTPHeader{{Name: "X-Via", Value: "gateway"}}},
					}},
					BackendRefs: []gatewayv1.HTTPBackendRef{{BackendRef: gatewayv1.BackendRef{
						BackendObjectReference: gatewayv1.BackendObjectReference{Name: "web", Port: ptr.To[int32](80)},
					}}},
					Timeouts: &gatewayv1.HTTPRouteTimeouts{Request: ptr.To(gatewayv1.Duration("10s"))},
				},
			},
		},
	}
}

// TestGatewayAPIEditsUserRoute: in a user's route, the rule to another
// Service stays exactly as the API server stored it, the rule to the apex
// is split, pipit's rules narrow it; Remove gives the route back as the
// API server stored it, the rule sending to the apex alone, and the route
// outlives the Rollout.
func TestGatewayAPIEditsUserRoute(t *testing.T) {
	c, cl := clusterClient(t)
	ns := c.Namespace(t)
	ro, plan := createRollout(t, cl, ns, &v1alpha1.KubernetesRouter{GatewayAPI: &v1alpha1.GatewayAPIRouter{HTTPRoute: "shop"}}, &v1alpha1.TrafficSpec{
		Rules: []v1alpha1.TrafficRule{
			{Name: "beta", To: v1alpha1.DestinationCanary, Headers: map[string]v1alpha1.StringMatch{"X-Beta": {Exact: "1"}}},
			{Name: "admin", To: v1alpha1.DestinationCanary, Path: &v1alpha1.StringMatch{Prefix: "/api/admin"}},
		},
		Mirror: &v1alpha1.Mirror{Percent: v1alpha1.PercentOf(10)},
	})
	user := userAppRoute(ns)
	create(t, cl, user)
	stored := user.DeepCopy() // as defaulted by the API server
	g := router.NewGatewayAPI(cl, ro, plan, nil)

	must(t, "SetWeight 10%", g.SetWeight(callCtx(t), v1alpha1.PercentOf(10), true))
	route := &gatewayv1.HTTPRoute{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "shop"}}
	get(t, cl, route)
	if got := ruleNames(route); got != "pipit-beta,pipit-admin,assets,app" {
		t.Fatalf("rules %q", got)
	}
	if !equality.Semantic.DeepEqual(routeRule(t, route, "assets"), stored.Spec.Rules[0]) {
		t.Errorf("the user's other rule changed:\n%+v\nwas\n%+v", routeRule(t, route, "assets"), stored.Spec.Rules[0])
	}
	if len(route.OwnerReferences) != 0 {
		t.Errorf("pipit took ownership of the user's route: %+v", route.OwnerReferences)
	}
	app := routeRule(t, route, "app")
	if w := backendWeights(app); w["web-stable"] != 90_000 || w["web-canary"] != 10_000 || len(w) != 2 {
		t.Errorf("app weights %v", w)
	}
	if len(app.Filters) != 2 || app.Filters[1].RequestMirror == nil || ptr.Deref(app.Filters[1].RequestMirror.Percent, 0) != 10 {
		t.Errorf("app filters %+v, want the user's and a 10%% mirror", app.Filters)
	}
	beta := routeRule(t, route, "pipit-beta")
	if m := beta.Matches; len(m) != 1 || *m[0].Path.Value != "/api" || len(m[0].Headers) != 1 {
		t.Errorf("pipit-beta matches %+v, want app's /api with x-beta", m)
	}
	if m := routeRule(t, route, "pipit-admin").Matches; len(m) != 1 || *m[0].Path.Value != "/api/admin" {
		t.Errorf("pipit-admin matches %+v, want /api/admin", m)
	}
	if !equality.Semantic.DeepEqual(beta.Timeouts, stored.Spec.Rules[1].Timeouts) {
		t.Errorf("pipit-beta timeouts %+v, want app's", beta.Timeouts)
	}

	version := route.ResourceVersion
	must(t, "SetWeight 10% again", g.SetWeight(callCtx(t), v1alpha1.PercentOf(10), true))
	get(t, cl, route)
	if route.ResourceVersion != version {
		t.Errorf("a second Apply of the same weight rewrote the route")
	}

	must(t, "Remove", g.Remove(callCtx(t)))
	get(t, cl, route)
	if got := ruleNames(route); got != "assets,app" {
		t.Fatalf("rules %q after Remove", got)
	}
	if !equality.Semantic.DeepEqual(route.Spec, stored.Spec) {
		t.Errorf("after Remove\n%+v\nwant the route as the user wrote it\n%+v", route.Spec.Rules, stored.Spec.Rules)
	}
	if b := routeRule(t, route, "app").BackendRefs; len(b) != 1 || b[0].Name != "web" || ptr.Deref(b[0].Port, 0) != 80 {
		t.Errorf("app sends to %+v after Remove, want the apex Service alone", b)
	}
	version = route.ResourceVersion
	must(t, "Remove again", g.Remove(callCtx(t)))
	get(t, cl, route)
	if route.ResourceVersion != version {
		t.Errorf("a second Remove rewrote the route")
	}

	must(t, "delete the Rollout", cl.Delete(callCtx(t), ro, client.PropagationPolicy(metav1.DeletePropagationForeground)))
	waitGone(t, cl, ro)
	get(t, cl, route)
	if route.ResourceVersion != version {
		t.Errorf("deleting the Rollout changed the user's route")
	}
}
