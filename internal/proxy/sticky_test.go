package proxy

import (
	"crypto/sha256"
	"crypto/tls"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/rollout"
)

var stickyOn = &v1alpha1.TrafficSpec{StickySession: &v1alpha1.StickySession{}}

// stickyClient talks to a proxy as one browser: it keeps the sticky
// cookie the proxy sets and sends it back.
type stickyClient struct {
	t      *testing.T
	client *http.Client
	url    string
	cookie string // name=value last set, empty before
}

// get sends one request and returns the version that answered and the
// Set-Cookie header the proxy added, if any.
func (c *stickyClient) get(header ...string) (version, setCookie string) {
	c.t.Helper()
	r, err := http.NewRequest(http.MethodGet, c.url, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Set(header[i], header[i+1])
	}
	if c.cookie != "" {
		r.Header.Set("Cookie", c.cookie)
	}
	res, err := c.client.Do(r)
	if err != nil {
		c.t.Fatal(err)
	}
	res.Body.Close()
	setCookie = res.Header.Get("Set-Cookie")
	if setCookie != "" {
		c.cookie, _, _ = strings.Cut(setCookie, ";")
	}
	return res.Header.Get(DefaultVersionHeader), setCookie
}

func stickyProxy(t *testing.T, spec *v1alpha1.TrafficSpec, weight v1alpha1.Percent) (*Proxy, *upstream, *upstream, string) {
	t.Helper()
	stable, canary := newUpstream(t, "v1"), newUpstream(t, "v2")
	c := canary.upstream(t)
	p := newProxy(t, Config{Stable: stable.upstream(t), Canary: &c, Weight: weight, Name: "checkout", Traffic: spec})
	return p, stable, canary, front(t, p)
}

// TestStickySessionCookie: the first answer sets a cookie with the
// attributes asked for; later requests carrying it keep the version and
// get no new cookie; every browser keeps its version at 50%.
func TestStickySessionCookie(t *testing.T) {
	_, _, _, addr := stickyProxy(t, stickyOn, 50*v1alpha1.PercentScale)
	client := &http.Client{Timeout: 10 * time.Second}
	versions := map[string]int{}
	for i := range 40 {
		b := &stickyClient{t: t, client: client, url: addr}
		first, set := b.get()
		if set == "" {
			t.Fatal("the first answer set no cookie")
		}
		if i == 0 {
			attrs := strings.Split(set, "; ")
			for _, want := range []string{"Path=/", "Max-Age=3600", "HttpOnly", "SameSite=Lax"} {
				if !slices.Contains(attrs, want) {
					t.Errorf("Set-Cookie %q lacks %s", set, want)
				}
			}
			if !strings.HasPrefix(set, "pipit-checkout=") || slices.Contains(attrs, "Secure") {
				t.Errorf("Set-Cookie %q: want the default name and no Secure over plain HTTP", set)
			}
		}
		versions[first]++
		for range 4 {
			v, set := b.get()
			if v != first || set != "" {
				t.Fatalf("browser %d: got %s (Set-Cookie %q) after %s", i, v, set, first)
			}
		}
	}
	if versions["v1"] == 0 || versions["v2"] == 0 {
		t.Fatalf("browsers per version at 50%%: %v", versions)
	}
}

// TestStickySessionOutlivesWeight: a user on the canary stays there when
// the weight drops (to the least above 0: at 0 the canary takes nobody,
// see TestStickyCookieWeightZero), and a user on stable stays there when
// it rises.
func TestStickySessionOutlivesWeight(t *testing.T) {
	p, _, _, addr := stickyProxy(t, stickyOn, v1alpha1.FullWeight)
	client := &http.Client{Timeout: 10 * time.Second}
	onCanary := &stickyClient{t: t, client: client, url: addr}
	if v, _ := onCanary.get(); v != "v2" {
		t.Fatalf("at 100%% got %s", v)
	}
	setWeight(t, p, 1) // 0.001%
	onStable := &stickyClient{t: t, client: client, url: addr}
	if v, _ := onStable.get(); v != "v1" {
		t.Fatalf("at 0.001%% got %s", v)
	}
	if v, _ := onCanary.get(); v != "v2" {
		t.Fatalf("the canary user went to %s when the weight dropped", v)
	}
	setWeight(t, p, v1alpha1.FullWeight)
	if v, _ := onStable.get(); v != "v1" {
		t.Fatalf("the stable user went to %s when the weight rose", v)
	}
}

// TestStickySessionRollback: after a rollback the canary cookie is ignored
// and replaced by one naming stable; a new canary replaces old cookies.
func TestStickySessionRollback(t *testing.T) {
	p, _, canary, addr := stickyProxy(t, stickyOn, v1alpha1.FullWeight)
	b := &stickyClient{t: t, client: &http.Client{Timeout: 10 * time.Second}, url: addr}
	b.get()
	canaryCookie := b.cookie
	p.SetCanaryAllowed(false)
	v, set := b.get()
	if v != "v1" || set == "" || b.cookie == canaryCookie {
		t.Fatalf("after the rollback: %s, Set-Cookie %q", v, set)
	}
	if v, set := b.get(); v != "v1" || set != "" {
		t.Fatalf("the replaced cookie: %s, Set-Cookie %q", v, set)
	}
	// A browser with no cookie gets none while there is no choice.
	fresh := &stickyClient{t: t, client: b.client, url: addr}
	if _, set := fresh.get(); set != "" {
		t.Fatalf("a cookie was set with the canary closed: %q", set)
	}

	// A new canary version: the old canary cookie names nothing serving.
	b.cookie = canaryCookie
	next := Upstream{Version: "v3", URL: mustURL(t, canary.URL)}
	if err := p.setUpstreams(p.table.Load().stable.up.clone(), &next); err != nil {
		t.Fatal(err)
	}
	if v, set := b.get(); v != "v3" || set == "" || b.cookie == canaryCookie {
		t.Fatalf("with a new canary: %s, Set-Cookie %q", v, set)
	}
}

// TestStickySessionSecure: behind TLS the cookie is Secure; name and TTL
// come from the spec.
func TestStickySessionSecure(t *testing.T) {
	stable := newUpstream(t, "v1")
	spec := &v1alpha1.TrafficSpec{StickySession: &v1alpha1.StickySession{CookieName: "ver", TTL: &metav1.Duration{Duration: 90 * time.Second}}}
	p := newProxy(t, Config{Stable: stable.upstream(t), Name: "checkout", Traffic: spec})
	c := Upstream{Version: "v2", URL: mustURL(t, stable.URL)}
	if err := p.setUpstreams(stable.upstream(t), &c); err != nil {
		t.Fatal(err)
	}
	s := httptest.NewTLSServer(p)
	t.Cleanup(s.Close)
	client := s.Client()
	client.Transport.(*http.Transport).TLSClientConfig = &tls.Config{InsecureSkipVerify: true} // the test server's own certificate
	res, err := client.Get(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	set := res.Header.Get("Set-Cookie")
	attrs := strings.Split(set, "; ")
	if !strings.HasPrefix(set, "ver=stable.") || !slices.Contains(attrs, "Secure") || !slices.Contains(attrs, "Max-Age=90") {
		t.Fatalf("Set-Cookie over TLS: %q", set)
	}
}

// TestStickySessionRulesFirst: a rule decides before the cookie and does
// not write it.
func TestStickySessionRulesFirst(t *testing.T) {
	spec := &v1alpha1.TrafficSpec{StickySession: &v1alpha1.StickySession{}, Rules: []v1alpha1.TrafficRule{enterprise}}
	tab := trafficTable(t, spec, 0)
	d := tab.route(req("/", "X-Customer-Tier", "enterprise", "Cookie", "pipit-checkout="+stickyValue(tab, RoleCanary)))
	if d.b != tab.stable || d.setCookie != "" {
		t.Fatalf("pinned request with a canary cookie: %s, Set-Cookie %q", d.b.role, d.setCookie)
	}
}

// FuzzStickyCookie feeds arbitrary Cookie headers to tables at weight 0
// with sticky sessions on, one with a rule to the canary (which then
// honours canary cookies, and only a cookie can send there) and one
// without (which honours none). A request goes to the canary exactly when
// the first genuine cookie net/http reads, among the first
// maxStickyCookies of the name, is the canary's, the canary takes traffic
// and is open. The scanner reads the same cookies, in the same order, as
// net/http. The fuzzer cannot sign: any value but one the table issued is
// a forgery.
func FuzzStickyCookie(f *testing.F) {
	clk := newTestClock()
	keys := CookieKeys{Current: testKey(f)}
	ruled := keyedTable(f, &v1alpha1.TrafficSpec{Rules: []v1alpha1.TrafficRule{forceCanary}, StickySession: &v1alpha1.StickySession{}}, 0, keys, clk)
	bare := keyedTable(f, stickyOn, 0, keys, clk) // same service, versions, key and clock: the same cookies
	canaryValue, stableValue := stickyValue(ruled, RoleCanary), stickyValue(ruled, RoleStable)
	f.Add("pipit-checkout="+canaryValue, false, true, false)
	f.Add("a=1; pipit-checkout=\""+canaryValue+"\"", false, true, true)
	f.Add("pipit-checkout="+canaryValue, true, true, false)
	f.Add("pipit-checkout="+canaryValue, false, false, false)
	f.Add("pipit-checkout=canary.0; pipit-checkout="+stableValue, false, true, false)
	f.Add(" pipit-checkout = "+canaryValue+" ;", false, true, false)
	f.Add("pipit-checkout=\\; x", false, true, false)
	f.Add(strings.Repeat("pipit-checkout=x;", maxStickyCookies)+"pipit-checkout="+canaryValue, false, true, false)
	f.Add(strings.Repeat(";", 3000)+"pipit-checkout="+canaryValue, false, true, false)
	f.Fuzz(func(t *testing.T, cookie string, closed, withRule, secure bool) {
		tab := *bare
		if withRule {
			tab = *ruled
		}
		tab.closed = closed
		r := &http.Request{Method: http.MethodGet, URL: &url.URL{Path: "/"}, Header: http.Header{"Cookie": {cookie}}}
		if secure {
			r.TLS = &tls.ConnectionState{}
		}
		var values []string
		for _, c := range r.CookiesNamed("pipit-checkout") {
			values = append(values, c.Value)
		}
		var scanned []string
		for s := newCookieScanner(r.Header, "pipit-checkout"); ; {
			v, ok := s.next()
			if !ok {
				break
			}
			scanned = append(scanned, v)
		}
		if !slices.Equal(values, scanned) {
			t.Fatalf("scanner read %q, net/http %q", scanned, values)
		}
		looked := values[:min(len(values), maxStickyCookies)]
		canaryCounts := withRule && !closed
		i := slices.IndexFunc(looked, func(v string) bool { return v == stableValue || (canaryCounts && v == canaryValue) })
		want := tab.stable
		if i >= 0 && looked[i] == canaryValue {
			want = tab.canary
		}
		d := tab.route(r)
		if d.b != want {
			t.Fatalf("cookies %q, closed %v, rule %v: routed to %s, want %s", values, closed, withRule, d.b.role, want.role)
		}
		// Open, a request without a genuine cookie is drawn and told
		// where it went; closed, only one with a cookie of the name.
		wantSet := i < 0 && (!closed || len(values) > 0)
		if (d.setCookie != "") != wantSet {
			t.Fatalf("cookies %q, closed %v, rule %v: Set-Cookie %q", values, closed, withRule, d.setCookie)
		}
		if d.setCookie != "" && strings.Contains(d.setCookie, "; Secure") != secure {
			t.Fatalf("Set-Cookie %q for a request with TLS %v", d.setCookie, secure)
		}
		if d.setCookie != "" && setCookieValue(d.setCookie) != stickyValue(&tab, d.b.role) {
			t.Fatalf("Set-Cookie %q is not the genuine cookie of %s", d.setCookie, d.b.role)
		}
	})
}

// The cookie's name defaults to pipit-NAME, or pipit without a name; an
// invalid one is refused.
func TestStickySessionCookieName(t *testing.T) {
	for name, want := range map[string]string{"checkout": "pipit-checkout", "": "pipit"} {
		c, err := compileSticky(&v1alpha1.StickySession{}, name, rollout.SystemClock{})
		if err != nil || c.name != want {
			t.Errorf("service %q: cookie %v, %v; want %s", name, c, err, want)
		}
	}
	for _, bad := range []string{"a b", "a;b", "é"} {
		if _, err := compileSticky(&v1alpha1.StickySession{CookieName: bad}, "x", rollout.SystemClock{}); err == nil {
			t.Errorf("cookie name %q compiled", bad)
		}
	}
	if _, err := compileSticky(&v1alpha1.StickySession{TTL: &metav1.Duration{}}, "x", rollout.SystemClock{}); err == nil {
		t.Error("a zero TTL compiled")
	}
}

// TestStickySessionFastPath runs the routing features through the
// Server's fast path (fasthttp), which applies the same decision: the
// sticky cookie is set and honoured, a rule overrides the weight, and a
// copy of a stable request reaches the canary with its body.
func TestStickySessionFastPath(t *testing.T) {
	stable, canary := newRecordingUpstream(t, "v1", nil), newRecordingUpstream(t, "v2", nil)
	spec := &v1alpha1.TrafficSpec{
		Rules:         []v1alpha1.TrafficRule{forceCanary},
		StickySession: &v1alpha1.StickySession{},
		Mirror:        &v1alpha1.Mirror{Percent: v1alpha1.FullWeight},
	}
	c := Upstream{Version: "v2", URL: mustURL(t, canary.URL)}
	p := newProxy(t, Config{Stable: Upstream{Version: "v1", URL: mustURL(t, stable.URL)}, Canary: &c, Name: "checkout", Traffic: spec})
	srv, err := NewServer(p, ServerConfig{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	addr := "http://" + ln.Addr().String()

	b := &stickyClient{t: t, client: &http.Client{Timeout: 10 * time.Second}, url: addr}
	if v, set := b.get(); v != "v1" || !strings.HasPrefix(set, "pipit-checkout=stable.") {
		t.Fatalf("first request: %s, Set-Cookie %q", v, set)
	}
	setWeight(t, p, v1alpha1.FullWeight)
	if v, set := b.get(); v != "v1" || set != "" {
		t.Fatalf("with the stable cookie at 100%%: %s, Set-Cookie %q", v, set)
	}
	if v, _ := b.get("Canary", "true"); v != "v2" {
		t.Fatalf("the override got %s", v)
	}
	setWeight(t, p, 0)
	if code, v := post(t, addr+"/orders", strings.NewReader("fast body")); code != 200 || v != "v1" {
		t.Fatalf("post: %d from %s", code, v)
	}
	// Copies of the earlier GETs may arrive after this one.
	want := sha256.Sum256([]byte("fast body"))
	waitFor(t, "the copy of the POST", func() bool {
		return slices.ContainsFunc(canary.requests(), func(r receivedRequest) bool {
			return r.method == http.MethodPost && r.uri == "/orders" && r.bodySum == want && r.header.Get(MirrorHeader) == "1"
		})
	})
}
