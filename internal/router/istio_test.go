package router

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/pipit-dev/pipit/api/v1alpha1"
)

func istioRollout(vs, dr string, traffic *v1alpha1.TrafficSpec) *v1alpha1.Rollout {
	return kubeRollout(&v1alpha1.KubernetesRouter{Istio: &v1alpha1.IstioRouter{
		VirtualService: vs, DestinationRule: dr, Hosts: []string{"shop.example.com"}, Gateways: []string{"infra/public"},
	}}, traffic)
}

// fromJSON builds an unstructured object as the API server would return
// it: numbers as int64 or float64.
func fromJSON(t *testing.T, s string) *unstructured.Unstructured {
	t.Helper()
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON([]byte(s)); err != nil {
		t.Fatal(err)
	}
	return u
}

// userVirtualService sends /static elsewhere and the rest to the apex
// Service by its long name, with a rewrite-free retry policy.
func userVirtualService(t *testing.T) *unstructured.Unstructured {
	return fromJSON(t, `{
	  "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
	  "metadata": {"name": "shop", "namespace": "shop"},
	  "spec": {
	    "hosts": ["shop.example.com"], "gateways": ["infra/public"],
	    "http": [
	      {"name": "assets", "match": [{"uri": {"prefix": "/static"}}],
	       "route": [{"destination": {"host": "assets.shop.svc.cluster.local", "port": {"number": 8080}}}]},
	      {"name": "app", "match": [{"uri": {"prefix": "/api"}}, {"uri": {"exact": "/"}}],
	       "retries": {"attempts": 3},
	       "route": [{"destination": {"host": "web.shop.svc.cluster.local", "port": {"number": 80}},
	                  "headers": {"request": {"set": {"x-via": "mesh"}}}}]}
	    ]
	  }
	}`)
}

func getIstio(t *testing.T, c client.Client, kind, name string) *unstructured.Unstructured {
	t.Helper()
	gvk := virtualServiceGVK
	if kind == "DestinationRule" {
		gvk = destinationRuleGVK
	}
	u := newUnstructured(gvk)
	if err := c.Get(testCtx(t), client.ObjectKey{Namespace: testNamespace, Name: name}, u); err != nil {
		t.Fatal(err)
	}
	return u
}

// httpRoutes is a VirtualService's http routes by name, in order.
func httpRoutes(t *testing.T, vs *unstructured.Unstructured) ([]string, map[string]map[string]any) {
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
	return names, byName
}

// jsonOf is v in JSON, for comparing maps whatever their numbers' types.
func jsonOf(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestIstioCreatesVirtualService(t *testing.T) {
	ro := istioRollout("", "", nil)
	c := newFakeClient(t, nil)
	r := NewIstio(c, ro, plan(ro), nil)
	if err := r.SetWeight(testCtx(t), 5_400, true); err != nil {
		t.Fatal(err)
	}
	vs := getIstio(t, c, "VirtualService", "web")
	if refs := vs.GetOwnerReferences(); len(refs) != 1 || refs[0].UID != ro.UID || refs[0].Controller == nil || !*refs[0].Controller {
		t.Errorf("owner references %+v", refs)
	}
	if vs.GetLabels()[labelManagedBy] != "pipit" || vs.GetLabels()[labelRollout] != "web" {
		t.Errorf("labels %v", vs.GetLabels())
	}
	want := `{"gateways":["infra/public"],"hosts":["shop.example.com"],"http":[{"name":"primary","route":[` +
		`{"destination":{"host":"web-stable","port":{"number":80}},"weight":95},` +
		`{"destination":{"host":"web-canary","port":{"number":80}},"weight":5}]}]}`
	if got := jsonOf(t, vs.Object["spec"]); got != want {
		t.Errorf("spec\n%s\nwant\n%s", got, want)
	}
	if r.Weight() != 5_400 {
		t.Errorf("Weight() = %s, want the 5.4%% asked for", r.Weight())
	}
}

func TestIstioEditsUserVirtualService(t *testing.T) {
	traffic := &v1alpha1.TrafficSpec{Rules: []v1alpha1.TrafficRule{
		{Name: "beta", To: v1alpha1.DestinationCanary,
			Headers: map[string]v1alpha1.StringMatch{"X-Beta": {Suffix: ".internal"}, "X-Legacy": {Not: true}},
			Cookies: map[string]v1alpha1.StringMatch{"optout": {Not: true}}},
		{To: v1alpha1.DestinationStable, QueryParams: map[string]v1alpha1.StringMatch{"v": {Prefix: "1."}}},
		{Name: "admin", To: v1alpha1.DestinationCanary, Path: &v1alpha1.StringMatch{Prefix: "/api/admin"}, Method: &v1alpha1.StringMatch{In: []string{"GET", "HEAD"}}},
	}}
	ro := istioRollout("shop", "", traffic)
	original := userVirtualService(t)
	c := newFakeClient(t, nil, original.DeepCopy())
	r := NewIstio(c, ro, plan(ro), nil)
	if err := r.SetWeight(testCtx(t), 33_333, true); err != nil {
		t.Fatal(err)
	}
	vs := getIstio(t, c, "VirtualService", "shop")
	names, routes := httpRoutes(t, vs)
	if got := strings.Join(names, ","); got != "pipit-beta,pipit-1,pipit-admin,assets,app" {
		t.Fatalf("routes %s, want pipit's first, then the user's", got)
	}
	_, before := httpRoutes(t, original)
	if jsonOf(t, routes["assets"]) != jsonOf(t, before["assets"]) {
		t.Errorf("the route to another Service changed: %s", jsonOf(t, routes["assets"]))
	}
	if h, _, _ := unstructured.NestedStringSlice(vs.Object, "spec", "hosts"); len(h) != 1 || h[0] != "shop.example.com" {
		t.Errorf("the user's hosts changed: %v", h)
	}
	wantApp := `{"match":[{"uri":{"prefix":"/api"}},{"uri":{"exact":"/"}}],"name":"app","retries":{"attempts":3},"route":[` +
		`{"destination":{"host":"web-stable.shop.svc.cluster.local","port":{"number":80}},"headers":{"request":{"set":{"x-via":"mesh"}}},"weight":67},` +
		`{"destination":{"host":"web-canary.shop.svc.cluster.local","port":{"number":80}},"headers":{"request":{"set":{"x-via":"mesh"}}},"weight":33}]}`
	if got := jsonOf(t, routes["app"]); got != wantApp {
		t.Errorf("app\n%s\nwant\n%s", got, wantApp)
	}

	checkIstioPipitRoutes(t, routes)

	if err := r.SetWeight(testCtx(t), 33_333, false); err != nil {
		t.Fatal(err)
	}
	names, routes = httpRoutes(t, getIstio(t, c, "VirtualService", "shop"))
	if got := strings.Join(names, ","); got != "assets,app" {
		t.Fatalf("routes %s after the rollout, want the user's", got)
	}
	if got := jsonOf(t, routes["app"]["route"]); !strings.Contains(got, `"weight":100`) || !strings.Contains(got, `"weight":0`) {
		t.Errorf("app routes %s after the rollout, want 100/0", got)
	}
}

// checkIstioPipitRoutes checks the routes TestIstioEditsUserVirtualService's
// traffic rules become: each narrows the user's app route.
func checkIstioPipitRoutes(t *testing.T, routes map[string]map[string]any) {
	t.Helper()
	beta := routes["pipit-beta"]
	if got := jsonOf(t, beta["route"]); got != `[{"destination":{"host":"web-canary.shop.svc.cluster.local","port":{"number":80}},"headers":{"request":{"set":{"x-via":"mesh"}}},"weight":100}]` {
		t.Errorf("pipit-beta routes to %s", got)
	}
	if got := jsonOf(t, beta["retries"]); got != `{"attempts":3}` {
		t.Errorf("pipit-beta does not keep app's retries: %s", got)
	}
	matches := beta["match"].([]any)
	if len(matches) != 2 {
		t.Fatalf("pipit-beta matches %s, want app's two narrowed", jsonOf(t, matches))
	}
	m := matches[0].(map[string]any)
	if got := jsonOf(t, m["uri"]); got != `{"prefix":"/api"}` {
		t.Errorf("uri %s, want app's", got)
	}
	if got := jsonOf(t, m["headers"]); got != `{"x-beta":{"regex":"^.*\\.internal$"}}` {
		t.Errorf("headers %s", got)
	}
	without := m["withoutHeaders"].(map[string]any)
	if got := jsonOf(t, without["x-legacy"]); got != `{"regex":".*"}` {
		t.Errorf("withoutHeaders x-legacy %s, want any value (the header absent)", got)
	}
	optout := regexp.MustCompile(without["cookie"].(map[string]any)["regex"].(string))
	if !optout.MatchString("a=1; optout=x") || optout.MatchString("a=optout") {
		t.Errorf("withoutHeaders cookie %s", optout)
	}

	query := routes["pipit-1"]["match"].([]any)[0].(map[string]any)
	if got := jsonOf(t, query["queryParams"]); got != `{"v":{"regex":"^1\\..*$"}}` {
		t.Errorf("queryParams %s, want the prefix as a regex", got)
	}
	if got := jsonOf(t, routes["pipit-1"]["route"].([]any)[0].(map[string]any)["destination"]); !strings.Contains(got, "web-stable") {
		t.Errorf("pipit-1 routes to %s, want stable", got)
	}
	admin := routes["pipit-admin"]["match"].([]any)
	if len(admin) != 1 || jsonOf(t, admin[0]) != `{"method":{"regex":"^(?:GET|HEAD)$"},"uri":{"prefix":"/api/admin"}}` {
		t.Errorf("pipit-admin matches %s, want /api/admin inside /api only", jsonOf(t, admin))
	}
}

func TestIstioSubsets(t *testing.T) {
	ro := istioRollout("shop", "web-versions", &v1alpha1.TrafficSpec{
		StickySession: &v1alpha1.StickySession{CookieName: "sticky", TTL: ttl(90 * time.Second)},
		Mirror:        &v1alpha1.Mirror{Percent: 2_500},
	})
	c := newFakeClient(t, nil, userVirtualService(t))
	r := NewIstio(c, ro, plan(ro), nil)
	if err := r.SetWeight(testCtx(t), 99_600, true); err != nil {
		t.Fatal(err)
	}
	dr := getIstio(t, c, "DestinationRule", "web-versions")
	want := `{"host":"web","subsets":[{"labels":{"pipit.dev/role":"stable"},"name":"stable"},{"labels":{"pipit.dev/role":"canary"},"name":"canary"}],` +
		`"trafficPolicy":{"loadBalancer":{"consistentHash":{"httpCookie":{"name":"sticky","ttl":"90s"}}}}}`
	if got := jsonOf(t, dr.Object["spec"]); got != want {
		t.Errorf("DestinationRule\n%s\nwant\n%s", got, want)
	}
	if refs := dr.GetOwnerReferences(); len(refs) != 1 || refs[0].UID != ro.UID {
		t.Errorf("DestinationRule owners %+v", refs)
	}
	_, routes := httpRoutes(t, getIstio(t, c, "VirtualService", "shop"))
	app := routes["app"]
	wantRoute := `[{"destination":{"host":"web.shop.svc.cluster.local","port":{"number":80},"subset":"stable"},"headers":{"request":{"set":{"x-via":"mesh"}}},"weight":1},` +
		`{"destination":{"host":"web.shop.svc.cluster.local","port":{"number":80},"subset":"canary"},"headers":{"request":{"set":{"x-via":"mesh"}}},"weight":99}]`
	if got := jsonOf(t, app["route"]); got != wantRoute {
		t.Errorf("route\n%s\nwant\n%s", got, wantRoute)
	}
	if got := jsonOf(t, app["mirror"]) + jsonOf(t, app["mirrorPercentage"]); got != `{"host":"web.shop.svc.cluster.local","port":{"number":80},"subset":"canary"}{"value":2.5}` {
		t.Errorf("mirror %s", got)
	}

	if err := r.Remove(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	_, routes = httpRoutes(t, getIstio(t, c, "VirtualService", "shop"))
	if _, ok := routes["app"]["mirror"]; ok {
		t.Error("pipit's mirror is still there after Remove")
	}
	if _, ok := routes["app"]["mirrorPercentage"]; ok {
		t.Error("pipit's mirror percentage is still there after Remove")
	}
}

// withHTTPRoute is vs with one more http route, given in JSON.
func withHTTPRoute(t *testing.T, vs *unstructured.Unstructured, route string) *unstructured.Unstructured {
	t.Helper()
	var r map[string]any
	if err := json.Unmarshal([]byte(route), &r); err != nil {
		t.Fatal(err)
	}
	http, _, _ := unstructured.NestedSlice(vs.Object, "spec", "http")
	if err := unstructured.SetNestedSlice(vs.Object, append(http, r), "spec", "http"); err != nil {
		t.Fatal(err)
	}
	return vs
}

// TestIstioRemove: once the Rollout is deleted, each of the user's routes
// that pipit split sends to the apex Service alone, as before, and
// pipit's routes and mirror are gone: the stable and canary Services and
// the DestinationRule go with the Rollout.
func TestIstioRemove(t *testing.T) {
	for _, dr := range []string{"", "web-versions"} {
		t.Run("destinationRule="+dr, func(t *testing.T) {
			ro := istioRollout("shop", dr, &v1alpha1.TrafficSpec{
				Rules:  []v1alpha1.TrafficRule{{Name: "beta", To: v1alpha1.DestinationCanary, Headers: map[string]v1alpha1.StringMatch{"X-Beta": {}}}},
				Mirror: &v1alpha1.Mirror{Percent: 10_000},
			})
			// The user split a preview between the per-version Services
			// himself, by their names in the namespace.
			original := withHTTPRoute(t, userVirtualService(t), `{"name": "preview", "match": [{"uri": {"prefix": "/preview"}}],
			  "route": [{"destination": {"host": "web-canary.shop", "port": {"number": 80}}, "weight": 10},
			            {"destination": {"host": "web-stable.shop", "port": {"number": 80}}, "weight": 90}]}`)
			updates := 0
			c := newFakeClient(t, countUpdates(&updates), original.DeepCopy())
			r := NewIstio(c, ro, plan(ro), nil)
			if err := r.SetWeight(testCtx(t), 40_000, true); err != nil {
				t.Fatal(err)
			}
			names, routes := httpRoutes(t, getIstio(t, c, "VirtualService", "shop"))
			if got := strings.Join(names, ","); got != "pipit-beta,pipit-beta-2,assets,app,preview" {
				t.Fatalf("routes %s after Apply", got)
			}
			if _, ok := routes["app"]["mirror"]; !ok || !strings.Contains(jsonOf(t, routes["app"]["route"]), `"weight":40`) {
				t.Fatalf("app %s after Apply, want a split with pipit's mirror", jsonOf(t, routes["app"]))
			}

			if err := r.Remove(testCtx(t)); err != nil {
				t.Fatal(err)
			}
			names, routes = httpRoutes(t, getIstio(t, c, "VirtualService", "shop"))
			if got := strings.Join(names, ","); got != "assets,app,preview" {
				t.Fatalf("routes %s after Remove, want the user's", got)
			}
			_, before := httpRoutes(t, original)
			for _, name := range []string{"assets", "app"} {
				if got, want := jsonOf(t, routes[name]), jsonOf(t, before[name]); got != want {
					t.Errorf("%s after Remove\n%s\nwant it as the user wrote it\n%s", name, got, want)
				}
			}
			if got := jsonOf(t, routes["preview"]["route"]); got != `[{"destination":{"host":"web.shop","port":{"number":80}}}]` {
				t.Errorf("preview routes to %s after Remove, want the apex Service alone", got)
			}
			if r.Weight() != 0 {
				t.Errorf("Weight() = %s after Remove, want 0", r.Weight())
			}
			n := updates
			if err := r.Remove(testCtx(t)); err != nil {
				t.Fatal(err)
			}
			if updates != n {
				t.Errorf("a second Remove wrote the VirtualService again")
			}
		})
	}
	// Remove never creates a VirtualService.
	ro := istioRollout("shop", "", nil)
	empty := newFakeClient(t, nil)
	if err := NewIstio(empty, ro, plan(ro), nil).Remove(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	list := &unstructured.UnstructuredList{}
	list.SetGroupVersionKind(virtualServiceGVK.GroupVersion().WithKind("VirtualServiceList"))
	if err := empty.List(testCtx(t), list); err != nil || len(list.Items) != 0 {
		t.Errorf("Remove created %d VirtualServices (%v)", len(list.Items), err)
	}
}

// TestIstioRemoveLeavesOwnedObjects: the VirtualService and
// DestinationRule pipit created are the garbage collector's to delete
// with the Rollout; Remove does not write them.
func TestIstioRemoveLeavesOwnedObjects(t *testing.T) {
	ro := istioRollout("", "web-versions", &v1alpha1.TrafficSpec{
		Rules: []v1alpha1.TrafficRule{{To: v1alpha1.DestinationCanary, Headers: map[string]v1alpha1.StringMatch{"X-Beta": {}}}},
	})
	updates := 0
	c := newFakeClient(t, countUpdates(&updates))
	r := NewIstio(c, ro, plan(ro), nil)
	if err := r.SetWeight(testCtx(t), 20_000, true); err != nil {
		t.Fatal(err)
	}
	vs, dr := getIstio(t, c, "VirtualService", "web"), getIstio(t, c, "DestinationRule", "web-versions")
	if err := r.Remove(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if got := getIstio(t, c, "VirtualService", "web"); updates != 0 || got.GetResourceVersion() != vs.GetResourceVersion() || jsonOf(t, got.Object["spec"]) != jsonOf(t, vs.Object["spec"]) {
		t.Errorf("Remove rewrote the VirtualService pipit owns (%d updates): %s", updates, jsonOf(t, got.Object["spec"]))
	}
	if got := getIstio(t, c, "DestinationRule", "web-versions"); got.GetResourceVersion() != dr.GetResourceVersion() {
		t.Errorf("Remove rewrote the DestinationRule pipit owns")
	}
}

// TestIstioRemoveLeavesMixedRoute: a route that sends to the rollout's
// Services and elsewhere was never pipit's to split (Apply refuses it);
// Remove leaves it and does not fail, so that the Rollout can still be
// deleted.
func TestIstioRemoveLeavesMixedRoute(t *testing.T) {
	ro := istioRollout("shop", "", nil)
	vs := withHTTPRoute(t, userVirtualService(t), `{"name": "mixed",
	  "route": [{"destination": {"host": "web-stable"}, "weight": 90}, {"destination": {"host": "legacy"}, "weight": 10}]}`)
	c := newFakeClient(t, nil, vs.DeepCopy())
	if err := NewIstio(c, ro, plan(ro), nil).Remove(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if got := getIstio(t, c, "VirtualService", "shop"); jsonOf(t, got.Object["spec"]) != jsonOf(t, vs.Object["spec"]) {
		t.Errorf("Remove changed a route pipit never split: %s", jsonOf(t, got.Object["spec"]))
	}
}

func TestIstioKeepsUserMirror(t *testing.T) {
	ro := istioRollout("shop", "", &v1alpha1.TrafficSpec{Mirror: &v1alpha1.Mirror{Percent: 10_000}})
	vs := userVirtualService(t)
	http, _, _ := unstructured.NestedSlice(vs.Object, "spec", "http")
	http[1].(map[string]any)["mirror"] = map[string]any{"host": "shadow"}
	if err := unstructured.SetNestedSlice(vs.Object, http, "spec", "http"); err != nil {
		t.Fatal(err)
	}
	c := newFakeClient(t, nil, vs)
	if err := NewIstio(c, ro, plan(ro), nil).SetWeight(testCtx(t), 1000, true); err != nil {
		t.Fatal(err)
	}
	_, routes := httpRoutes(t, getIstio(t, c, "VirtualService", "shop"))
	if got := jsonOf(t, routes["app"]["mirror"]); got != `{"host":"shadow"}` {
		t.Errorf("mirror %s, want the user's kept", got)
	}
}

func TestIstioRefusesForeignDestinationRule(t *testing.T) {
	ro := istioRollout("shop", "theirs", nil)
	dr := fromJSON(t, `{"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
	  "metadata": {"name": "theirs", "namespace": "shop"}, "spec": {"host": "web"}}`)
	c := newFakeClient(t, nil, userVirtualService(t), dr)
	err := NewIstio(c, ro, plan(ro), nil).SetWeight(testCtx(t), 1000, true)
	if err == nil || !strings.Contains(err.Error(), "DestinationRule shop/theirs") {
		t.Fatalf("err = %v, want the user's DestinationRule refused", err)
	}
	if got := jsonOf(t, getIstio(t, c, "DestinationRule", "theirs").Object["spec"]); got != `{"host":"web"}` {
		t.Errorf("the user's DestinationRule changed: %s", got)
	}
}

func TestIstioWritesOnlyChanges(t *testing.T) {
	ro := istioRollout("shop", "web-versions", &v1alpha1.TrafficSpec{
		Rules:  []v1alpha1.TrafficRule{{To: v1alpha1.DestinationCanary, Headers: map[string]v1alpha1.StringMatch{"X-Beta": {}}}},
		Mirror: &v1alpha1.Mirror{Percent: 5_000},
	})
	updates := 0
	c := newFakeClient(t, countUpdates(&updates), userVirtualService(t))
	r := NewIstio(c, ro, plan(ro), nil)
	for range 3 {
		if err := r.SetWeight(testCtx(t), 1000, true); err != nil {
			t.Fatal(err)
		}
	}
	if updates != 1 {
		t.Errorf("%d updates for three Applies of one weight, want 1", updates)
	}
}

func TestIstioRefusals(t *testing.T) {
	cases := []struct {
		name    string
		traffic *v1alpha1.TrafficSpec
		want    string
	}{
		{"negated query", &v1alpha1.TrafficSpec{Rules: []v1alpha1.TrafficRule{
			{To: v1alpha1.DestinationCanary, QueryParams: map[string]v1alpha1.StringMatch{"beta": {Not: true}}},
		}}, "query parameter beta: Istio negates header conditions only"},
		{"negated path", &v1alpha1.TrafficSpec{Rules: []v1alpha1.TrafficRule{
			{To: v1alpha1.DestinationCanary, Path: &v1alpha1.StringMatch{Prefix: "/x", Not: true}},
		}}, "uri: Istio negates"},
		{"list file", &v1alpha1.TrafficSpec{Rules: []v1alpha1.TrafficRule{
			{To: v1alpha1.DestinationCanary, Headers: map[string]v1alpha1.StringMatch{"X-User": {InFile: "users.txt"}}},
		}}, "header x-user: inFile"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ro := istioRollout("shop", "", c.traffic)
			cl := newFakeClient(t, nil, userVirtualService(t))
			err := NewIstio(cl, ro, plan(ro), nil).SetWeight(testCtx(t), 1000, true)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want it to mention %q", err, c.want)
			}
		})
	}
	vs := userVirtualService(t)
	http, _, _ := unstructured.NestedSlice(vs.Object, "spec", "http")
	app := http[1].(map[string]any)
	app["route"] = append(app["route"].([]any), map[string]any{"destination": map[string]any{"host": "legacy"}})
	if err := unstructured.SetNestedSlice(vs.Object, http, "spec", "http"); err != nil {
		t.Fatal(err)
	}
	ro := istioRollout("shop", "", nil)
	err := NewIstio(newFakeClient(t, nil, vs), ro, plan(ro), nil).SetWeight(testCtx(t), 1000, true)
	if err == nil || !strings.Contains(err.Error(), "legacy") {
		t.Errorf("err = %v, want a route mixing the rollout's Services with legacy refused", err)
	}
}

func TestIstioOurHost(t *testing.T) {
	ro := istioRollout("shop", "", nil)
	r := NewIstio(newFakeClient(t, nil), ro, plan(ro), nil)
	for host, want := range map[string]string{
		"web": "", "web-canary": "", "web.shop": ".shop", "web-stable.shop.svc": ".shop.svc",
		"web.shop.svc.cluster.local": ".shop.svc.cluster.local",
	} {
		if _, suffix, ok := r.ourHost(host); !ok || suffix != want {
			t.Errorf("ourHost(%s) = %q, %v; want %q", host, suffix, ok, want)
		}
	}
	for _, host := range []string{"webx", "web.other", "web.other.svc.cluster.local", "web.shopping", "assets"} {
		if _, _, ok := r.ourHost(host); ok {
			t.Errorf("ourHost(%s) claims it", host)
		}
	}
}

func TestCombineIstioMatch(t *testing.T) {
	cases := []struct {
		name   string
		route  string
		ours   string
		result string
	}{
		{"no user match", `{}`, `{"headers":{"x":{"exact":"1"}}}`, `[{"headers":{"x":{"exact":"1"}}}]`},
		{"root prefix", `{"match":[{"uri":{"prefix":"/"}}]}`, `{"uri":{"exact":"/a"}}`, `[{"uri":{"exact":"/a"}}]`},
		{"outside the prefix", `{"match":[{"uri":{"prefix":"/api"}}]}`, `{"uri":{"prefix":"/web"}}`, `null`},
		{"uri rewrite", `{"match":[{"uri":{"prefix":"/api"}}],"rewrite":{"uri":"/"}}`, `{"uri":{"prefix":"/api/admin"}}`, `null`},
		{"header conflict", `{"match":[{"headers":{"x":{"exact":"2"}}}]}`, `{"headers":{"x":{"exact":"1"}}}`, `null`},
		{"headers merge", `{"match":[{"headers":{"y":{"exact":"2"}},"port":80}]}`, `{"headers":{"x":{"exact":"1"}}}`,
			`[{"headers":{"x":{"exact":"1"},"y":{"exact":"2"}},"port":80}]`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var route, ours map[string]any
			if err := json.Unmarshal([]byte(c.route), &route); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal([]byte(c.ours), &ours); err != nil {
				t.Fatal(err)
			}
			got, err := combineIstioMatches(route, ours)
			if err != nil {
				t.Fatal(err)
			}
			if s := jsonOf(t, got); s != c.result {
				t.Errorf("got %s, want %s", s, c.result)
			}
		})
	}
}
