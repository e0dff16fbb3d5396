package proxy

import (
	"crypto/sha256"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/proxy/route"
	"github.com/pipit-dev/pipit/internal/rollout"
	"github.com/pipit-dev/pipit/internal/testenv/nettest"
)

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

func stickyProxy(t *testing.T, spec *v1alpha1.TrafficSpec, weight v1alpha1.Percent) (*Proxy, *testUpstream, *testUpstream, string) {
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
	next := Upstream{Version: "v3", URL: nettest.MustURL(t, canary.URL)}
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
	c := Upstream{Version: "v2", URL: nettest.MustURL(t, stable.URL)}
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
	c := Upstream{Version: "v2", URL: nettest.MustURL(t, canary.URL)}
	p := newProxy(t, Config{Stable: Upstream{Version: "v1", URL: nettest.MustURL(t, stable.URL)}, Canary: &c, Name: "checkout", Traffic: spec})
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
	nettest.Eventually(t, "the copy of the POST", func() bool {
		return slices.ContainsFunc(canary.requests(), func(r receivedRequest) bool {
			return r.method == http.MethodPost && r.uri == "/orders" && r.bodySum == want && r.header.Get(MirrorHeader) == "1"
		})
	})
}

// stickyPaths are the request paths a sticky cookie is checked on: the
// net/http path, as a plain handler and as HTTP/2 (h2c) through a Server,
// and the Server's fast path for HTTP/1.1.
var stickyPaths = []struct {
	name  string
	serve func(testing.TB, *Proxy) string
	h2c   bool
}{
	{"net/http", front, false},
	{"h2c", func(t testing.TB, p *Proxy) string { return serveWith(t, p, ServerConfig{}) }, true},
	{"fast", func(t testing.TB, p *Proxy) string { return serveWith(t, p, ServerConfig{}) }, false},
}

// cookieGet sends GET url with the Cookie header, if any, and returns the
// version that answered and the value of the sticky cookie set.
func cookieGet(t *testing.T, client *http.Client, url, cookie string, h2 bool) (version, set string) {
	t.Helper()
	r, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cookie != "" {
		r.Header.Set("Cookie", cookie)
	}
	res, err := client.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if (res.ProtoMajor == 2) != h2 {
		t.Fatalf("answered over %s", res.Proto)
	}
	if sc := res.Header.Values("Set-Cookie"); len(sc) > 1 {
		t.Fatalf("several Set-Cookie: %q", sc)
	}
	return res.Header.Get(DefaultVersionHeader), setCookieValue(res.Header.Get("Set-Cookie"))
}

// TestStickyCookieAttacksOverHTTP plays the attacks over real connections
// on every request path: the cookie a browser got keeps it on the canary;
// forged, tampered and foreign cookies get stable and a genuine stable
// cookie; the cookie survives a key rotation and stops working once its
// TTL is over; and with neither weight nor rule the canary takes nobody.
func TestStickyCookieAttacksOverHTTP(t *testing.T) {
	stable, canary := newUpstream(t, "v1"), newUpstream(t, "v2")
	for _, path := range stickyPaths {
		t.Run(path.name, func(t *testing.T) {
			client := &http.Client{Timeout: 10 * time.Second}
			if path.h2c {
				client.Transport = &http.Transport{Protocols: unencryptedHTTP2()}
			}
			defer client.CloseIdleConnections()
			clk := newTestClock()
			a := testKey(t)
			c := canary.upstream(t)
			p := newProxy(t, Config{Stable: stable.upstream(t), Canary: &c, Weight: v1alpha1.FullWeight, Name: "checkout",
				Traffic: toCanaryByRule, CookieKeys: route.CookieKeys{Current: a}, Clock: clk})
			url := path.serve(t, p)
			get := func(cookie string) (string, string) { t.Helper(); return cookieGet(t, client, url, cookie, path.h2c) }

			v, genuine := get("")
			if v != "v2" || genuine == "" {
				t.Fatalf("at 100%%: %s, Set-Cookie %q", v, genuine)
			}
			setWeight(t, p, 0) // only the cookie can send there now
			if v, set := get("pipit-checkout=" + genuine); v != "v2" || set != "" {
				t.Fatalf("the genuine cookie: %s, Set-Cookie %q", v, set)
			}
			_, expiry, mac := splitCookie(t, genuine)
			forged := "canary." + strconv.FormatInt(expiry, 10) + "." + strings.Repeat("A", len(mac))
			for what, value := range map[string]string{
				"the old unsigned format":    oldUnsignedCanaryCookie,
				"another installation's key": foreignCanaryCookie(t, clk),
				"the role swapped":           "stable." + strconv.FormatInt(expiry, 10) + "." + mac,
				"the expiry extended":        "canary." + strconv.FormatInt(expiry+86400, 10) + "." + mac,
				"a made-up MAC":              forged,
				"garbage":                    "<script>",
			} {
				v, set := get("pipit-checkout=" + value)
				if v != "v1" || !strings.HasPrefix(set, "stable.") {
					t.Errorf("%s: %s, Set-Cookie %q; want v1 and a stable cookie", what, v, set)
					continue
				}
				if v, again := get("pipit-checkout=" + set); v != "v1" || again != "" {
					t.Errorf("%s: the stable cookie given in its place: %s, Set-Cookie %q", what, v, again)
				}
			}
			if v, set := get("pipit-checkout=" + forged + "; pipit-checkout=" + genuine); v != "v2" || set != "" {
				t.Errorf("a forged cookie before the genuine one: %s, Set-Cookie %q", v, set)
			}

			clk.Advance(10 * time.Minute)
			if err := p.SetCookieKeys(route.CookieKeys{Current: testKey(t), Previous: a, RotatedAt: clk.Now()}); err != nil {
				t.Fatal(err)
			}
			if v, set := get("pipit-checkout=" + genuine); v != "v2" || set != "" {
				t.Errorf("the cookie after a key rotation: %s, Set-Cookie %q", v, set)
			}
			clk.Advance(50 * time.Minute) // the cookie's TTL is over
			if v, set := get("pipit-checkout=" + genuine); v != "v1" || !strings.HasPrefix(set, "stable.") {
				t.Errorf("the cookie past its TTL: %s, Set-Cookie %q", v, set)
			}

			// Neither weight nor rule: the canary takes nobody.
			c2 := canary.upstream(t)
			bare := newProxy(t, Config{Stable: stable.upstream(t), Canary: &c2, Weight: v1alpha1.FullWeight, Name: "checkout",
				Traffic: stickyOn, CookieKeys: route.CookieKeys{Current: a}, Clock: clk})
			url = path.serve(t, bare)
			if v, genuine = get(""); v != "v2" {
				t.Fatalf("at 100%%: %s", v)
			}
			setWeight(t, bare, 0)
			if v, set := get("pipit-checkout=" + genuine); v != "v1" || !strings.HasPrefix(set, "stable.") {
				t.Errorf("a canary cookie at weight 0: %s, Set-Cookie %q; want v1 and a stable cookie", v, set)
			}
		})
	}
}

// oldUnsignedCanaryCookie is the canary cookie of service checkout and
// canary v2 as pipit wrote it before cookies were signed: the role and
// a salted hash of the version, which anybody could compute.
const oldUnsignedCanaryCookie = "canary.643bdf1804e2f7ba"

// foreignCanaryCookie is a genuine canary cookie of another installation
// of service checkout: the same names, signed with another key.
func foreignCanaryCookie(t *testing.T, clk rollout.Clock) string {
	t.Helper()
	policy, err := route.Compile(toCanaryByRule, route.Options{Name: "checkout", Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	tab, err := route.NewTable(v1alpha1.FullWeight, policy, route.CookieKeys{Current: testKey(t)})
	if err != nil {
		t.Fatal(err)
	}
	tab = tab.WithUpstreams("v1", "v2", true)
	return setCookieValue(tab.Route(httptest.NewRequest(http.MethodGet, "/", nil)).SetCookie)
}
