package routertest

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/router"
)

// istioRules uses every condition Istio can express, negations included.
func istioRules() []v1alpha1.TrafficRule {
	return []v1alpha1.TrafficRule{
		{Name: "force-canary", To: v1alpha1.DestinationCanary, Headers: map[string]v1alpha1.StringMatch{"Canary": {Exact: "true"}}},
		{Name: "enterprise", To: v1alpha1.DestinationStable, Headers: map[string]v1alpha1.StringMatch{"X-Customer-Tier": {Prefix: "enterprise"}}},
		{Name: "beta", To: v1alpha1.DestinationCanary,
			Headers: map[string]v1alpha1.StringMatch{"X-User-ID": {In: []string{"u-17", "u-42"}}, "X-Legacy": {Not: true}, "X-Email": {Suffix: "@company.com"}},
			Cookies: map[string]v1alpha1.StringMatch{"beta": {Exact: "1"}, "optout": {Not: true}}},
		{Name: "query", To: v1alpha1.DestinationCanary, QueryParams: map[string]v1alpha1.StringMatch{"v": {Prefix: "2."}, "beta": {}}},
		{Name: "admin", To: v1alpha1.DestinationCanary, Path: &v1alpha1.StringMatch{Prefix: "/api/admin"}, Method: &v1alpha1.StringMatch{In: []string{"GET", "POST"}}},
	}
}

func httpRoutes(t *testing.T, vs *unstructured.Unstructured) (string, map[string]map[string]any) {
	t.Helper()
	list, _, err := unstructured.NestedSlice(vs.Object, "spec", "http")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	byName := map[string]map[string]any{}
	for _, r := range list {
		m := r.(map[string]any)
		name, _ := m["name"].(string)
		names = append(names, name)
		byName[name] = m
	}
	return strings.Join(names, ","), byName
}

func jsonOf(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestIstioCreatesVirtualService: the VirtualService pipit creates, by
// Service, with a route for each kind of condition, passes Istio's schema;
// a second Apply writes nothing; Remove leaves it, and the Rollout's
// deletion takes it along.
func TestIstioCreatesVirtualService(t *testing.T) {
	c, cl := clusterClient(t)
	ns := c.Namespace(t)
	ro, plan := createRollout(t, cl, ns, &v1alpha1.KubernetesRouter{Istio: &v1alpha1.IstioRouter{Gateways: []string{"istio-system/public"}, Hosts: []string{"shop.example.com"}}},
		&v1alpha1.TrafficSpec{Rules: istioRules(), Mirror: &v1alpha1.Mirror{Percent: v1alpha1.PercentOf(0.5)}})
	r := router.NewIstio(cl, ro, plan, nil)

	must(t, "SetWeight 0.4%", r.SetWeight(callCtx(t), v1alpha1.PercentOf(0.4), true))
	vs := istioObject("VirtualService", ns, "web")
	get(t, cl, vs)
	if !metav1.IsControlledBy(vs, ro) {
		t.Errorf("owners %+v", vs.GetOwnerReferences())
	}
	names, routes := httpRoutes(t, vs)
	if names != "pipit-force-canary,pipit-enterprise,pipit-beta,pipit-query,pipit-admin,primary" {
		t.Fatalf("routes %s", names)
	}
	want := `[{"destination":{"host":"web-stable","port":{"number":80}},"weight":99},{"destination":{"host":"web-canary","port":{"number":80}},"weight":1}]`
	if got := jsonOf(t, routes["primary"]["route"]); got != want {
		t.Errorf("primary route %s, want %s (0.4%% rounds up to 1%%, never to 0)", got, want)
	}
	if got := jsonOf(t, routes["primary"]["mirror"]) + jsonOf(t, routes["primary"]["mirrorPercentage"]); got != `{"host":"web-canary","port":{"number":80}}{"value":0.5}` {
		t.Errorf("mirror %s", got)
	}
	beta := routes["pipit-beta"]["match"].([]any)[0].(map[string]any)
	if _, ok := beta["withoutHeaders"].(map[string]any)["cookie"]; !ok {
		t.Errorf("pipit-beta match %s, want the negated cookie in withoutHeaders", jsonOf(t, beta))
	}

	version := vs.GetResourceVersion()
	must(t, "SetWeight 0.4% again", r.SetWeight(callCtx(t), v1alpha1.PercentOf(0.4), true))
	get(t, cl, vs)
	if vs.GetResourceVersion() != version {
		t.Errorf("a second Apply of the same weight rewrote the VirtualService")
	}
	must(t, "Remove", r.Remove(callCtx(t)))
	get(t, cl, vs)
	if vs.GetResourceVersion() != version {
		t.Errorf("Remove rewrote the VirtualService pipit owns, which is the garbage collector's")
	}

	must(t, "SetWeight at the end", r.SetWeight(callCtx(t), 0, false))
	get(t, cl, vs)
	names, routes = httpRoutes(t, vs)
	if names != "primary" {
		t.Fatalf("routes %s after the rollout", names)
	}
	if got := jsonOf(t, routes["primary"]); strings.Contains(got, "mirror") || !strings.Contains(got, `"weight":100`) {
		t.Errorf("primary %s after the rollout, want 100/0 and no mirror", got)
	}

	must(t, "delete the Rollout", cl.Delete(callCtx(t), ro, client.PropagationPolicy(metav1.DeletePropagationBackground)))
	waitGone(t, cl, vs)
}

// createUserVirtualService creates a user's VirtualService shop in
// namespace ns: a route to another Service (assets) and one to the
// rollout's apex Service by its long name (app), with a timeout.
func createUserVirtualService(t *testing.T, cl client.Client, ns string) *unstructured.Unstructured {
	t.Helper()
	user := istioObject("VirtualService", ns, "shop")
	var spec map[string]any
	must(t, "decode", json.Unmarshal([]byte(`{
	    "hosts": ["shop.example.com"], "gateways": ["istio-system/public"],
	    "http": [
	      {"name": "assets", "match": [{"uri": {"prefix": "/static"}}],
	       "route": [{"destination": {"host": "assets", "port": {"number": 8080}}}]},
	      {"name": "app", "match": [{"uri": {"prefix": "/api"}}], "timeout": "10s",
	       "route": [{"destination": {"host": "web.`+ns+`.svc.cluster.local", "port": {"number": 80}}}]}
	    ]}`), &spec))
	user.Object["spec"] = spec
	create(t, cl, user)
	return user
}

// checkDestinationRule checks the DestinationRule web-versions pipit
// created for TestIstioEditsUserVirtualService's rollout ro, and returns
// it.
func checkDestinationRule(t *testing.T, cl client.Client, ns string, ro *v1alpha1.Rollout) *unstructured.Unstructured {
	t.Helper()
	dr := istioObject("DestinationRule", ns, "web-versions")
	get(t, cl, dr)
	wantDR := `{"host":"web","subsets":[{"labels":{"pipit.dev/role":"stable"},"name":"stable"},{"labels":{"pipit.dev/role":"canary"},"name":"canary"}],` +
		`"trafficPolicy":{"loadBalancer":{"consistentHash":{"httpCookie":{"name":"user-session","ttl":"3600s"}}}}}`
	if got := jsonOf(t, dr.Object["spec"]); got != wantDR {
		t.Errorf("DestinationRule\n%s\nwant\n%s", got, wantDR)
	}
	if !metav1.IsControlledBy(dr, ro) {
		t.Errorf("DestinationRule owners %+v", dr.GetOwnerReferences())
	}
	return dr
}

// TestIstioEditsUserVirtualService: by subsets, with sticky sessions; the
// user's unrelated route survives Apply and Remove as the API server
// stored it, the DestinationRule pipit creates passes the schema; Remove
// gives the VirtualService back as the API server stored it, the route
// sending to the apex alone, and it outlives the Rollout while the
// DestinationRule goes with it.
func TestIstioEditsUserVirtualService(t *testing.T) {
	c, cl := clusterClient(t)
	ns := c.Namespace(t)
	ro, plan := createRollout(t, cl, ns, &v1alpha1.KubernetesRouter{Istio: &v1alpha1.IstioRouter{VirtualService: "shop", DestinationRule: "web-versions"}},
		&v1alpha1.TrafficSpec{
			Rules:         istioRules(),
			StickySession: &v1alpha1.StickySession{CookieName: "user-session", TTL: &metav1.Duration{Duration: time.Hour}},
		})
	user := createUserVirtualService(t, cl, ns)
	_, stored := httpRoutes(t, user)
	r := router.NewIstio(cl, ro, plan, nil)

	must(t, "SetWeight 25%", r.SetWeight(callCtx(t), v1alpha1.PercentOf(25), true))
	dr := checkDestinationRule(t, cl, ns, ro)
	vs := istioObject("VirtualService", ns, "shop")
	get(t, cl, vs)
	names, routes := httpRoutes(t, vs)
	if names != "pipit-force-canary,pipit-enterprise,pipit-beta,pipit-query,pipit-admin,assets,app" {
		t.Fatalf("routes %s", names)
	}
	if jsonOf(t, routes["assets"]) != jsonOf(t, stored["assets"]) {
		t.Errorf("the user's unrelated route changed: %s", jsonOf(t, routes["assets"]))
	}
	host := "web." + ns + ".svc.cluster.local"
	wantApp := `[{"destination":{"host":"` + host + `","port":{"number":80},"subset":"stable"},"weight":75},` +
		`{"destination":{"host":"` + host + `","port":{"number":80},"subset":"canary"},"weight":25}]`
	if got := jsonOf(t, routes["app"]["route"]); got != wantApp {
		t.Errorf("app route\n%s\nwant\n%s", got, wantApp)
	}
	if got := jsonOf(t, routes["pipit-admin"]["match"]); got != `[{"method":{"regex":"^(?:GET|POST)$"},"uri":{"prefix":"/api/admin"}}]` {
		t.Errorf("pipit-admin match %s", got)
	}
	if routes["pipit-beta"]["timeout"] != "10s" {
		t.Errorf("pipit-beta %s does not keep app's timeout", jsonOf(t, routes["pipit-beta"]))
	}

	version := vs.GetResourceVersion()
	must(t, "SetWeight 25% again", r.SetWeight(callCtx(t), v1alpha1.PercentOf(25), true))
	get(t, cl, vs)
	if vs.GetResourceVersion() != version {
		t.Errorf("a second Apply of the same weight rewrote the VirtualService")
	}

	must(t, "Remove", r.Remove(callCtx(t)))
	get(t, cl, vs)
	names, routes = httpRoutes(t, vs)
	if names != "assets,app" {
		t.Fatalf("routes %s after Remove", names)
	}
	for _, name := range []string{"assets", "app"} {
		if got, want := jsonOf(t, routes[name]), jsonOf(t, stored[name]); got != want {
			t.Errorf("%s after Remove\n%s\nwant it as the user wrote it\n%s", name, got, want)
		}
	}
	if got := jsonOf(t, routes["app"]["route"]); got != `[{"destination":{"host":"`+host+`","port":{"number":80}}}]` {
		t.Errorf("app routes to %s after Remove, want the apex Service alone", got)
	}
	if len(vs.GetOwnerReferences()) != 0 {
		t.Errorf("pipit took ownership of the user's VirtualService")
	}
	version = vs.GetResourceVersion()
	must(t, "Remove again", r.Remove(callCtx(t)))
	get(t, cl, vs)
	if vs.GetResourceVersion() != version {
		t.Errorf("a second Remove rewrote the VirtualService")
	}

	must(t, "delete the Rollout", cl.Delete(callCtx(t), ro, client.PropagationPolicy(metav1.DeletePropagationForeground)))
	waitGone(t, cl, dr)
	get(t, cl, vs)
	if vs.GetResourceVersion() != version {
		t.Errorf("deleting the Rollout changed the user's VirtualService")
	}
}
