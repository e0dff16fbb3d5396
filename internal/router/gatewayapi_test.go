package router

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/pipit-dev/pipit/api/v1alpha1"
)

func gatewayRollout(route string, traffic *v1alpha1.TrafficSpec) *v1alpha1.Rollout {
	return kubeRollout(&v1alpha1.KubernetesRouter{GatewayAPI: &v1alpha1.GatewayAPIRouter{
		HTTPRoute:  route,
		ParentRefs: []v1alpha1.GatewayParentRef{{Name: "public", Namespace: "infra", SectionName: "https"}},
	}}, traffic)
}

func svcRef(name string, port int32, weight *int32) gatewayv1.HTTPBackendRef {
	return gatewayv1.HTTPBackendRef{BackendRef: gatewayv1.BackendRef{
		BackendObjectReference: gatewayv1.BackendObjectReference{Name: gatewayv1.ObjectName(name), Port: ptr.To(port)},
		Weight:                 weight,
	}}
}

func prefix(p string) *gatewayv1.HTTPPathMatch {
	return &gatewayv1.HTTPPathMatch{Type: ptr.To(gatewayv1.PathMatchPathPrefix), Value: ptr.To(p)}
}

// userRoute is a user's route for a shop: static assets go elsewhere,
// /api and the home page to the rollout's apex Service.
func userRoute() *gatewayv1.HTTPRoute {
	return &gatewayv1.HTTPRoute{
		ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: testNamespace},
		Spec: gatewayv1.HTTPRouteSpec{
			CommonRouteSpec: gatewayv1.CommonRouteSpec{ParentRefs: []gatewayv1.ParentReference{{Name: "public"}}},
			Hostnames:       []gatewayv1.Hostname{"shop.example.com"},
			Rules: []gatewayv1.HTTPRouteRule{
				{
					Name:        ptr.To(gatewayv1.SectionName("assets")),
					Matches:     []gatewayv1.HTTPRouteMatch{{Path: prefix("/static")}},
					BackendRefs: []gatewayv1.HTTPBackendRef{svcRef("assets", 8080, nil)},
				},
				{
					Name: ptr.To(gatewayv1.SectionName("app")),
					Matches: []gatewayv1.HTTPRouteMatch{
						{Path: prefix("/api")},
						{Path: &gatewayv1.HTTPPathMatch{Type: ptr.To(gatewayv1.PathMatchExact), Value: ptr.To("/")}},
					},
					Filters: []gatewayv1.HTTPRouteFilter{{
						Type: gatewayv1.HTTPRouteFilterRequestHeaderModifier,
						RequestHeaderModifier: &gatewayv1.HTTPHeaderFilter{
							Set: []gatewayv1.HTTPHeader{{Name: "X-Via", Value: "gateway"}},
						},
					}},
					BackendRefs: []gatewayv1.HTTPBackendRef{svcRef("web", 80, nil)},
					Timeouts:    &gatewayv1.HTTPRouteTimeouts{Request: ptr.To(gatewayv1.Duration("10s"))},
				},
			},
		},
	}
}

func getRoute(t *testing.T, c client.Client, name string) *gatewayv1.HTTPRoute {
	t.Helper()
	var r gatewayv1.HTTPRoute
	if err := c.Get(testCtx(t), client.ObjectKey{Namespace: testNamespace, Name: name}, &r); err != nil {
		t.Fatal(err)
	}
	return &r
}

// weightsOf is the weights of a rule's backendRefs by Service.
func weightsOf(r gatewayv1.HTTPRouteRule) map[string]int32 {
	w := map[string]int32{}
	for _, b := range r.BackendRefs {
		w[string(b.Name)] = ptr.Deref(b.Weight, 1)
	}
	return w
}

func ruleNamed(t *testing.T, route *gatewayv1.HTTPRoute, name string) gatewayv1.HTTPRouteRule {
	t.Helper()
	for _, r := range route.Spec.Rules {
		if ptr.Deref(r.Name, "") == gatewayv1.SectionName(name) {
			return r
		}
	}
	t.Fatalf("no rule %s in %v", name, ruleNamesOf(route))
	return gatewayv1.HTTPRouteRule{}
}

func ruleNamesOf(route *gatewayv1.HTTPRoute) []string {
	var names []string
	for _, r := range route.Spec.Rules {
		names = append(names, string(ptr.Deref(r.Name, "")))
	}
	return names
}

func TestGatewayAPICreatesRoute(t *testing.T) {
	ro := gatewayRollout("", nil)
	c := newFakeClient(t, nil)
	g := NewGatewayAPI(c, ro, plan(ro), nil)
	if err := g.SetWeight(testCtx(t), 5000, true); err != nil {
		t.Fatal(err)
	}
	route := getRoute(t, c, "web")
	if !metav1.IsControlledBy(route, ro) {
		t.Errorf("owner references %v: want the Rollout as controller", route.OwnerReferences)
	}
	if route.Labels[labelManagedBy] != "pipit" || route.Labels[labelRollout] != "web" {
		t.Errorf("labels %v", route.Labels)
	}
	want := []gatewayv1.ParentReference{{
		Group: ptr.To(gatewayv1.Group("gateway.networking.k8s.io")), Kind: ptr.To(gatewayv1.Kind("Gateway")),
		Namespace: ptr.To(gatewayv1.Namespace("infra")), Name: "public", SectionName: ptr.To(gatewayv1.SectionName("https")),
	}}
	if !equality.Semantic.DeepEqual(route.Spec.ParentRefs, want) {
		t.Errorf("parentRefs %+v, want %+v", route.Spec.ParentRefs, want)
	}
	if len(route.Spec.Rules) != 1 {
		t.Fatalf("%d rules, want 1", len(route.Spec.Rules))
	}
	if w := weightsOf(route.Spec.Rules[0]); w["web-stable"] != 95000 || w["web-canary"] != 5000 || len(w) != 2 {
		t.Errorf("weights %v, want web-stable 95000, web-canary 5000", w)
	}
	for _, b := range route.Spec.Rules[0].BackendRefs {
		if ptr.Deref(b.Port, 0) != 80 {
			t.Errorf("backendRef %s has port %v, want 80", b.Name, b.Port)
		}
	}
	if g.Weight() != 5000 {
		t.Errorf("Weight() = %s, want 5%%", g.Weight())
	}
}

func TestGatewayAPIEditsUserRoute(t *testing.T) {
	traffic := &v1alpha1.TrafficSpec{Rules: []v1alpha1.TrafficRule{
		{Name: "beta", To: v1alpha1.DestinationCanary, Headers: map[string]v1alpha1.StringMatch{"X-Beta": {Exact: "1"}}},
		{To: v1alpha1.DestinationStable, Cookies: map[string]v1alpha1.StringMatch{"optout": {}}},
		{Name: "admins", To: v1alpha1.DestinationCanary, Path: &v1alpha1.StringMatch{Prefix: "/api/admin"},
			Method: &v1alpha1.StringMatch{In: []string{"GET", "POST"}}},
	}}
	ro := gatewayRollout("shop", traffic)
	original := userRoute()
	c := newFakeClient(t, nil, original.DeepCopy())
	g := NewGatewayAPI(c, ro, plan(ro), nil)

	if err := g.SetWeight(testCtx(t), 12_500, true); err != nil {
		t.Fatal(err)
	}
	route := getRoute(t, c, "shop")
	if got := strings.Join(ruleNamesOf(route), ","); got != "pipit-beta,pipit-1,pipit-admins,assets,app" {
		t.Fatalf("rules %s, want pipit's first, then the user's", got)
	}
	if !equality.Semantic.DeepEqual(ruleNamed(t, route, "assets"), original.Spec.Rules[0]) {
		t.Errorf("the rule to another Service changed:\n%+v", ruleNamed(t, route, "assets"))
	}
	if !equality.Semantic.DeepEqual(route.Spec.ParentRefs, original.Spec.ParentRefs) || len(route.Spec.Hostnames) != 1 {
		t.Errorf("the user's parentRefs or hostnames changed: %+v %v", route.Spec.ParentRefs, route.Spec.Hostnames)
	}
	app := ruleNamed(t, route, "app")
	if w := weightsOf(app); w["web-stable"] != 87_500 || w["web-canary"] != 12_500 || len(w) != 2 {
		t.Errorf("app weights %v, want the apex replaced by web-stable 87500 and web-canary 12500", w)
	}
	if !equality.Semantic.DeepEqual(app.Matches, original.Spec.Rules[1].Matches) || !equality.Semantic.DeepEqual(app.Filters, original.Spec.Rules[1].Filters) {
		t.Errorf("app's matches or filters changed: %+v %+v", app.Matches, app.Filters)
	}

	checkGatewayPipitRules(t, route, original)

	// The rollout ends: pipit's rules leave, stable gets everything, the
	// rest is as the user wrote it (with the apex replaced).
	if err := g.SetWeight(testCtx(t), 12_500, false); err != nil {
		t.Fatal(err)
	}
	route = getRoute(t, c, "shop")
	if got := strings.Join(ruleNamesOf(route), ","); got != "assets,app" {
		t.Fatalf("rules %s after the rollout, want the user's only", got)
	}
	if w := weightsOf(ruleNamed(t, route, "app")); w["web-stable"] != 100_000 || w["web-canary"] != 0 {
		t.Errorf("weights %v after the rollout, want all on stable", w)
	}
	if g.Weight() != 0 {
		t.Errorf("Weight() = %s after the rollout, want 0", g.Weight())
	}
}

// checkGatewayPipitRules checks the rules TestGatewayAPIEditsUserRoute's
// traffic rules become: each narrows the user's app rule.
func checkGatewayPipitRules(t *testing.T, route, original *gatewayv1.HTTPRoute) {
	t.Helper()
	beta := ruleNamed(t, route, "pipit-beta")
	if w := weightsOf(beta); w["web-canary"] != 1 || len(w) != 1 {
		t.Errorf("pipit-beta sends to %v, want web-canary only", w)
	}
	if len(beta.Matches) != 2 {
		t.Fatalf("pipit-beta has %d matches, want app's two narrowed: %+v", len(beta.Matches), beta.Matches)
	}
	for n, m := range beta.Matches {
		if !equality.Semantic.DeepEqual(m.Path, original.Spec.Rules[1].Matches[n].Path) {
			t.Errorf("match %d path %+v, want app's", n, m.Path)
		}
		if len(m.Headers) != 1 || m.Headers[0].Name != "x-beta" || m.Headers[0].Value != "1" || *m.Headers[0].Type != gatewayv1.HeaderMatchExact {
			t.Errorf("match %d headers %+v, want x-beta exact 1", n, m.Headers)
		}
	}
	if !equality.Semantic.DeepEqual(beta.Filters, original.Spec.Rules[1].Filters) || !equality.Semantic.DeepEqual(beta.Timeouts, original.Spec.Rules[1].Timeouts) {
		t.Errorf("pipit-beta does not keep app's filters and timeouts: %+v %+v", beta.Filters, beta.Timeouts)
	}

	optout := ruleNamed(t, route, "pipit-1")
	if w := weightsOf(optout); w["web-stable"] != 1 || len(w) != 1 {
		t.Errorf("pipit-1 sends to %v, want web-stable only", w)
	}
	h := optout.Matches[0].Headers
	if len(h) != 1 || h[0].Name != "cookie" || *h[0].Type != gatewayv1.HeaderMatchRegularExpression {
		t.Fatalf("pipit-1 headers %+v, want a regex on the cookie header", h)
	}
	if re := regexp.MustCompile(h[0].Value); !re.MatchString("a=1; optout=yes") || re.MatchString("a=optout") {
		t.Errorf("cookie regex %s", h[0].Value)
	}

	// /api/admin is inside /api and not the home page: one match per method.
	admins := ruleNamed(t, route, "pipit-admins")
	if len(admins.Matches) != 2 {
		t.Fatalf("pipit-admins matches %+v, want /api/admin for GET and POST", admins.Matches)
	}
	for n, method := range []gatewayv1.HTTPMethod{"GET", "POST"} {
		m := admins.Matches[n]
		if *m.Path.Value != "/api/admin" || *m.Path.Type != gatewayv1.PathMatchPathPrefix || ptr.Deref(m.Method, "") != method {
			t.Errorf("match %d: %s %s %v, want PathPrefix /api/admin %s", n, *m.Path.Type, *m.Path.Value, m.Method, method)
		}
	}
}

func TestGatewayAPIWritesOnlyChanges(t *testing.T) {
	ro := gatewayRollout("shop", &v1alpha1.TrafficSpec{Rules: []v1alpha1.TrafficRule{
		{To: v1alpha1.DestinationCanary, Headers: map[string]v1alpha1.StringMatch{"X-Beta": {}}},
	}})
	updates := 0
	c := newFakeClient(t, countUpdates(&updates), userRoute())
	g := NewGatewayAPI(c, ro, plan(ro), nil)
	for range 3 {
		if err := g.SetWeight(testCtx(t), 1000, true); err != nil {
			t.Fatal(err)
		}
	}
	if updates != 1 {
		t.Errorf("%d updates for three Applies of one weight, want 1", updates)
	}
	if err := g.SetWeight(testCtx(t), 2000, true); err != nil {
		t.Fatal(err)
	}
	if updates != 2 {
		t.Errorf("%d updates after a new weight, want 2", updates)
	}
}

func TestGatewayAPIRetriesConflicts(t *testing.T) {
	ro := gatewayRollout("shop", nil)
	conflicts := 2
	c := newFakeClient(t, &interceptor.Funcs{Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
		if conflicts > 0 {
			conflicts--
			return apierrors.NewConflict(schema.GroupResource{Group: gatewayv1.GroupName, Resource: "httproutes"}, obj.GetName(), nil)
		}
		return c.Update(ctx, obj, opts...)
	}}, userRoute())
	g := NewGatewayAPI(c, ro, plan(ro), nil)
	if err := g.SetWeight(testCtx(t), 3000, true); err != nil {
		t.Fatal(err)
	}
	if w := weightsOf(ruleNamed(t, getRoute(t, c, "shop"), "app")); w["web-canary"] != 3000 {
		t.Errorf("weights %v after two conflicts, want web-canary 3000", w)
	}
	if g.Weight() != 3000 {
		t.Errorf("Weight() = %s", g.Weight())
	}
}

func TestGatewayAPIFailedWriteKeepsWeight(t *testing.T) {
	ro := gatewayRollout("shop", nil)
	fail := false
	c := newFakeClient(t, &interceptor.Funcs{Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
		if fail {
			return apierrors.NewForbidden(schema.GroupResource{Group: gatewayv1.GroupName, Resource: "httproutes"}, obj.GetName(), nil)
		}
		return c.Update(ctx, obj, opts...)
	}}, userRoute())
	g := NewGatewayAPI(c, ro, plan(ro), nil)
	if err := g.SetWeight(testCtx(t), 3000, true); err != nil {
		t.Fatal(err)
	}
	fail = true
	err := g.SetWeight(testCtx(t), 6000, true)
	if err == nil || !strings.Contains(err.Error(), "HTTPRoute shop/shop") {
		t.Fatalf("err = %v, want the route named", err)
	}
	if g.Weight() != 3000 {
		t.Errorf("Weight() = %s after a failed Apply, want the last applied 3%%", g.Weight())
	}
}

func TestGatewayAPIMirrorAndSessions(t *testing.T) {
	for _, c := range []struct {
		mirror   v1alpha1.Percent
		percent  *int32
		fraction *gatewayv1.Fraction
	}{
		{mirror: 10_000, percent: ptr.To[int32](10)},
		{mirror: 2_500, fraction: &gatewayv1.Fraction{Numerator: 2500, Denominator: ptr.To[int32](100_000)}},
	} {
		t.Run(c.mirror.String(), func(t *testing.T) {
			ro := gatewayRollout("shop", &v1alpha1.TrafficSpec{
				Mirror:        &v1alpha1.Mirror{Percent: c.mirror},
				StickySession: &v1alpha1.StickySession{TTL: ttl(90 * time.Minute)},
			})
			cl := newFakeClient(t, nil, userRoute())
			g := NewGatewayAPI(cl, ro, plan(ro), nil)
			if err := g.SetWeight(testCtx(t), 1000, true); err != nil {
				t.Fatal(err)
			}
			app := ruleNamed(t, getRoute(t, cl, "shop"), "app")
			if len(app.Filters) != 2 {
				t.Fatalf("filters %+v, want the user's and pipit's mirror", app.Filters)
			}
			m := app.Filters[1].RequestMirror
			if app.Filters[1].Type != gatewayv1.HTTPRouteFilterRequestMirror || m == nil || m.BackendRef.Name != "web-canary" ||
				!equality.Semantic.DeepEqual(m.Percent, c.percent) || !equality.Semantic.DeepEqual(m.Fraction, c.fraction) {
				t.Errorf("mirror %+v", app.Filters[1])
			}
			want := &gatewayv1.SessionPersistence{
				SessionName: ptr.To("pipit-web"), AbsoluteTimeout: ptr.To(gatewayv1.Duration("1h30m")),
				Type:         ptr.To(gatewayv1.CookieBasedSessionPersistence),
				CookieConfig: &gatewayv1.CookieConfig{LifetimeType: ptr.To(gatewayv1.PermanentCookieLifetimeType)},
			}
			if !equality.Semantic.DeepEqual(app.SessionPersistence, want) {
				t.Errorf("session persistence %+v, want %+v", app.SessionPersistence, want)
			}
			if err := g.Remove(testCtx(t)); err != nil {
				t.Fatal(err)
			}
			app = ruleNamed(t, getRoute(t, cl, "shop"), "app")
			if len(app.Filters) != 1 || app.Filters[0].Type != gatewayv1.HTTPRouteFilterRequestHeaderModifier || app.SessionPersistence != nil {
				t.Errorf("after Remove: filters %+v, session %+v; want the user's filter only", app.Filters, app.SessionPersistence)
			}
		})
	}
}

func TestGatewayAPIKeepsUserSessionPersistence(t *testing.T) {
	ro := gatewayRollout("shop", &v1alpha1.TrafficSpec{StickySession: &v1alpha1.StickySession{}})
	route := userRoute()
	mine := &gatewayv1.SessionPersistence{SessionName: ptr.To("user-session")}
	route.Spec.Rules[1].SessionPersistence = mine
	c := newFakeClient(t, nil, route)
	g := NewGatewayAPI(c, ro, plan(ro), nil)
	if err := g.SetWeight(testCtx(t), 1000, true); err != nil {
		t.Fatal(err)
	}
	if got := ruleNamed(t, getRoute(t, c, "shop"), "app").SessionPersistence; !equality.Semantic.DeepEqual(got, mine) {
		t.Errorf("session persistence %+v, want the user's kept", got)
	}
}

func TestGatewayAPIRefusals(t *testing.T) {
	mixed := userRoute()
	mixed.Spec.Rules[1].BackendRefs = append(mixed.Spec.Rules[1].BackendRefs, svcRef("legacy", 80, nil))
	unrelated := userRoute()
	unrelated.Spec.Rules = unrelated.Spec.Rules[:1]
	cases := []struct {
		name    string
		route   *gatewayv1.HTTPRoute
		traffic *v1alpha1.TrafficSpec
		want    string
	}{
		{"mixed backends", mixed, nil, "legacy"},
		{"nothing to route", unrelated, nil, "no rule sends traffic to Service web"},
		{"negation", userRoute(), &v1alpha1.TrafficSpec{Rules: []v1alpha1.TrafficRule{
			{To: v1alpha1.DestinationCanary, Headers: map[string]v1alpha1.StringMatch{"X-Beta": {Exact: "1", Not: true}}},
		}}, "cannot negate"},
		{"method prefix", userRoute(), &v1alpha1.TrafficSpec{Rules: []v1alpha1.TrafficRule{
			{Name: "posts", To: v1alpha1.DestinationCanary, Method: &v1alpha1.StringMatch{Prefix: "P"}},
		}}, "traffic rule 0 (posts): method"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ro := gatewayRollout("shop", c.traffic)
			cl := newFakeClient(t, nil, c.route)
			err := NewGatewayAPI(cl, ro, plan(ro), nil).SetWeight(testCtx(t), 1000, true)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want it to mention %q", err, c.want)
			}
			if got := getRoute(t, cl, "shop"); !equality.Semantic.DeepEqual(got.Spec, c.route.Spec) {
				t.Errorf("the route changed on a refusal")
			}
		})
	}
	// Once the rollout is over a route that routes nothing to it is fine.
	ro := gatewayRollout("shop", nil)
	if err := NewGatewayAPI(newFakeClient(t, nil, unrelated), ro, plan(ro), nil).SetWeight(testCtx(t), 0, false); err != nil {
		t.Errorf("SetWeight after the rollout on an unrelated route: %v", err)
	}
	if err := NewGatewayAPI(newFakeClient(t, nil), ro, plan(ro), nil).SetWeight(testCtx(t), -1, true); err == nil {
		t.Error("a negative weight was accepted")
	}
}

// countUpdates is interceptor functions counting the client's updates.
func countUpdates(n *int) *interceptor.Funcs {
	return &interceptor.Funcs{Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
		*n++
		return c.Update(ctx, obj, opts...)
	}}
}

// TestGatewayAPIRemove: once the Rollout is deleted, each of the user's
// rules that pipit split sends to the apex Service alone, as before, and
// pipit's rules, mirror and session persistence are gone: the stable and
// canary Services go with the Rollout.
// apexRefs is a rule's backendRefs to the apex Service web alone, with
// filters, as Remove writes them.
func apexRefs(filters []gatewayv1.HTTPRouteFilter) []gatewayv1.HTTPBackendRef {
	return []gatewayv1.HTTPBackendRef{{
		BackendRef: gatewayv1.BackendRef{
			BackendObjectReference: gatewayv1.BackendObjectReference{
				Group: ptr.To(gatewayv1.Group("")), Kind: ptr.To(gatewayv1.Kind("Service")), Name: "web", Port: ptr.To[int32](80),
			},
			Weight: ptr.To[int32](1),
		},
		Filters: filters,
	}}
}

func TestGatewayAPIRemove(t *testing.T) {
	ro := gatewayRollout("shop", &v1alpha1.TrafficSpec{
		Rules:         []v1alpha1.TrafficRule{{Name: "beta", To: v1alpha1.DestinationCanary, Headers: map[string]v1alpha1.StringMatch{"X-Beta": {}}}},
		Mirror:        &v1alpha1.Mirror{Percent: 10_000},
		StickySession: &v1alpha1.StickySession{},
	})
	original := userRoute()
	app := &original.Spec.Rules[1]
	app.BackendRefs[0].Filters = []gatewayv1.HTTPRouteFilter{{
		Type:                   gatewayv1.HTTPRouteFilterResponseHeaderModifier,
		ResponseHeaderModifier: &gatewayv1.HTTPHeaderFilter{Add: []gatewayv1.HTTPHeader{{Name: "X-App", Value: "web"}}},
	}}
	// The user split a preview between the per-version Services himself.
	original.Spec.Rules = append(original.Spec.Rules, gatewayv1.HTTPRouteRule{
		Name:        ptr.To(gatewayv1.SectionName("preview")),
		Matches:     []gatewayv1.HTTPRouteMatch{{Path: prefix("/preview")}},
		BackendRefs: []gatewayv1.HTTPBackendRef{svcRef("web-canary", 80, ptr.To[int32](3)), svcRef("web-stable", 80, ptr.To[int32](1))},
	})
	updates := 0
	c := newFakeClient(t, countUpdates(&updates), original.DeepCopy())
	g := NewGatewayAPI(c, ro, plan(ro), nil)
	if err := g.SetWeight(testCtx(t), 50_000, true); err != nil {
		t.Fatal(err)
	}
	route := getRoute(t, c, "shop")
	if got := strings.Join(ruleNamesOf(route), ","); got != "pipit-beta,pipit-beta-2,assets,app,preview" {
		t.Fatalf("rules %s after Apply", got)
	}
	if w := weightsOf(ruleNamed(t, route, "app")); w["web-canary"] != 50_000 || len(ruleNamed(t, route, "app").Filters) != 2 {
		t.Fatalf("app %+v after Apply, want a split with pipit's mirror", ruleNamed(t, route, "app"))
	}

	if err := g.Remove(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	route = getRoute(t, c, "shop")
	if got := strings.Join(ruleNamesOf(route), ","); got != "assets,app,preview" {
		t.Fatalf("rules %s after Remove, want the user's", got)
	}
	if !equality.Semantic.DeepEqual(ruleNamed(t, route, "assets"), original.Spec.Rules[0]) {
		t.Errorf("Remove changed the rule to another Service:\n%+v", ruleNamed(t, route, "assets"))
	}
	wantApp := app.DeepCopy()
	wantApp.BackendRefs = apexRefs(app.BackendRefs[0].Filters)
	if got := ruleNamed(t, route, "app"); !equality.Semantic.DeepEqual(got, *wantApp) {
		t.Errorf("app after Remove\n%+v\nwant the user's rule to the apex Service alone\n%+v", got, *wantApp)
	}
	if got := ruleNamed(t, route, "preview").BackendRefs; !equality.Semantic.DeepEqual(got, apexRefs(nil)) {
		t.Errorf("preview sends to %+v after Remove, want the apex Service alone", got)
	}
	if g.Weight() != 0 {
		t.Errorf("Weight() = %s after Remove, want 0", g.Weight())
	}
	before := updates
	if err := g.Remove(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if updates != before {
		t.Errorf("a second Remove wrote the route again")
	}

	// Remove never creates a route.
	empty := newFakeClient(t, nil)
	if err := NewGatewayAPI(empty, ro, plan(ro), nil).Remove(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	var list gatewayv1.HTTPRouteList
	if err := empty.List(testCtx(t), &list); err != nil || len(list.Items) != 0 {
		t.Errorf("Remove created %d routes (%v)", len(list.Items), err)
	}
}

// TestGatewayAPIRemoveLeavesOwnedRoute: the route pipit created is the
// garbage collector's to delete with the Rollout; Remove does not write
// it.
func TestGatewayAPIRemoveLeavesOwnedRoute(t *testing.T) {
	ro := gatewayRollout("", &v1alpha1.TrafficSpec{Rules: []v1alpha1.TrafficRule{
		{To: v1alpha1.DestinationCanary, Headers: map[string]v1alpha1.StringMatch{"X-Beta": {}}},
	}})
	updates := 0
	c := newFakeClient(t, countUpdates(&updates))
	g := NewGatewayAPI(c, ro, plan(ro), nil)
	if err := g.SetWeight(testCtx(t), 20_000, true); err != nil {
		t.Fatal(err)
	}
	created := getRoute(t, c, "web")
	if err := g.Remove(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if got := getRoute(t, c, "web"); updates != 0 || got.ResourceVersion != created.ResourceVersion || !equality.Semantic.DeepEqual(got.Spec, created.Spec) {
		t.Errorf("Remove rewrote the route pipit owns (%d updates): %+v", updates, got.Spec.Rules)
	}
}

// TestGatewayAPIRemoveLeavesMixedRule: a rule that sends to the rollout's
// Services and to another backend was never pipit's to split (Apply
// refuses it); Remove leaves it and does not fail, so that the Rollout
// can still be deleted.
func TestGatewayAPIRemoveLeavesMixedRule(t *testing.T) {
	ro := gatewayRollout("shop", nil)
	route := userRoute()
	route.Spec.Rules[1].BackendRefs = []gatewayv1.HTTPBackendRef{svcRef("web-stable", 80, ptr.To[int32](9)), svcRef("legacy", 80, ptr.To[int32](1))}
	c := newFakeClient(t, nil, route.DeepCopy())
	if err := NewGatewayAPI(c, ro, plan(ro), nil).Remove(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if got := getRoute(t, c, "shop"); !equality.Semantic.DeepEqual(got.Spec, route.Spec) {
		t.Errorf("Remove changed a rule pipit never split: %+v", got.Spec.Rules)
	}
}

func TestCombineMatches(t *testing.T) {
	exact := func(p string) *gatewayv1.HTTPPathMatch {
		return &gatewayv1.HTTPPathMatch{Type: ptr.To(gatewayv1.PathMatchExact), Value: ptr.To(p)}
	}
	beta := gatewayv1.HTTPHeaderMatch{Type: ptr.To(gatewayv1.HeaderMatchExact), Name: "x-beta", Value: "1"}
	cases := []struct {
		name  string
		rule  gatewayv1.HTTPRouteRule
		ours  gatewayv1.HTTPRouteMatch
		paths []string // the combined matches' paths; none when they cannot combine
	}{
		{"no user match", gatewayv1.HTTPRouteRule{}, gatewayv1.HTTPRouteMatch{Headers: []gatewayv1.HTTPHeaderMatch{beta}}, []string{"/"}},
		{"ours inside", gatewayv1.HTTPRouteRule{Matches: []gatewayv1.HTTPRouteMatch{{Path: prefix("/api/")}}}, gatewayv1.HTTPRouteMatch{Path: exact("/api/v2")}, []string{"/api/v2"}},
		{"segment boundary", gatewayv1.HTTPRouteRule{Matches: []gatewayv1.HTTPRouteMatch{{Path: prefix("/api")}}}, gatewayv1.HTTPRouteMatch{Path: prefix("/apiary")}, nil},
		{"user narrower", gatewayv1.HTTPRouteRule{Matches: []gatewayv1.HTTPRouteMatch{{Path: prefix("/api/v2")}}}, gatewayv1.HTTPRouteMatch{Path: prefix("/api")}, nil},
		{"different exact paths", gatewayv1.HTTPRouteRule{Matches: []gatewayv1.HTTPRouteMatch{{Path: exact("/a")}}}, gatewayv1.HTTPRouteMatch{Path: exact("/b")}, nil},
		{"prefix rewrite keeps its path", gatewayv1.HTTPRouteRule{
			Matches: []gatewayv1.HTTPRouteMatch{{Path: prefix("/api")}},
			Filters: []gatewayv1.HTTPRouteFilter{{Type: gatewayv1.HTTPRouteFilterURLRewrite, URLRewrite: &gatewayv1.HTTPURLRewriteFilter{
				Path: &gatewayv1.HTTPPathModifier{Type: gatewayv1.PrefixMatchHTTPPathModifier, ReplacePrefixMatch: ptr.To("/")},
			}}},
		}, gatewayv1.HTTPRouteMatch{Path: prefix("/api/admin")}, nil},
		{"conflicting header", gatewayv1.HTTPRouteRule{Matches: []gatewayv1.HTTPRouteMatch{{Headers: []gatewayv1.HTTPHeaderMatch{{Name: "X-Beta", Value: "2"}}}}},
			gatewayv1.HTTPRouteMatch{Headers: []gatewayv1.HTTPHeaderMatch{beta}}, nil},
		{"same header", gatewayv1.HTTPRouteRule{Matches: []gatewayv1.HTTPRouteMatch{{Headers: []gatewayv1.HTTPHeaderMatch{{Name: "X-Beta", Value: "1"}}}}},
			gatewayv1.HTTPRouteMatch{Headers: []gatewayv1.HTTPHeaderMatch{beta}}, []string{"/"}},
		{"different methods", gatewayv1.HTTPRouteRule{Matches: []gatewayv1.HTTPRouteMatch{{Method: ptr.To(gatewayv1.HTTPMethodGet)}}},
			gatewayv1.HTTPRouteMatch{Method: ptr.To(gatewayv1.HTTPMethodPost)}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := combineMatches(c.rule, []gatewayv1.HTTPRouteMatch{c.ours})
			var paths []string
			for _, m := range got {
				paths = append(paths, *m.Path.Value)
			}
			if strings.Join(paths, ",") != strings.Join(c.paths, ",") {
				t.Errorf("paths %v, want %v (%+v)", paths, c.paths, got)
			}
		})
	}
}

func TestGatewayDuration(t *testing.T) {
	for d, want := range map[time.Duration]gatewayv1.Duration{
		time.Hour: "1h", 90 * time.Minute: "1h30m", 1500 * time.Millisecond: "1s500ms", 0: "0s", 25*time.Hour + time.Second: "25h1s",
	} {
		if got := gatewayDuration(metav1.Duration{Duration: d}); got != want {
			t.Errorf("gatewayDuration(%s) = %s, want %s", d, got, want)
		}
	}
}
