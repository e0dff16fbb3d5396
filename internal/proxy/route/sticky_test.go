package route

import (
	"crypto/tls"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/rollout"
)

var stickyOn = &v1alpha1.TrafficSpec{StickySession: &v1alpha1.StickySession{}}

// TestStickySessionRulesFirst: a rule decides before the cookie and does
// not write it.
func TestStickySessionRulesFirst(t *testing.T) {
	spec := &v1alpha1.TrafficSpec{StickySession: &v1alpha1.StickySession{}, Rules: []v1alpha1.TrafficRule{enterprise}}
	tab := trafficTable(t, spec, 0)
	d := tab.Route(req("/", "X-Customer-Tier", "enterprise", "Cookie", "pipit-checkout="+stickyValue(tab, RoleCanary)))
	if d.Canary || d.SetCookie != "" {
		t.Fatalf("pinned request with a canary cookie: %s, Set-Cookie %q", d.Role(), d.SetCookie)
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
		want := RoleStable
		if i >= 0 && looked[i] == canaryValue {
			want = RoleCanary
		}
		d := tab.Route(r)
		if d.Role() != want {
			t.Fatalf("cookies %q, closed %v, rule %v: routed to %s, want %s", values, closed, withRule, d.Role(), want)
		}
		// Open, a request without a genuine cookie is drawn and told
		// where it went; closed, only one with a cookie of the name.
		wantSet := i < 0 && (!closed || len(values) > 0)
		if (d.SetCookie != "") != wantSet {
			t.Fatalf("cookies %q, closed %v, rule %v: Set-Cookie %q", values, closed, withRule, d.SetCookie)
		}
		if d.SetCookie != "" && strings.Contains(d.SetCookie, "; Secure") != secure {
			t.Fatalf("Set-Cookie %q for a request with TLS %v", d.SetCookie, secure)
		}
		if d.SetCookie != "" && setCookieValue(d.SetCookie) != stickyValue(&tab, d.Role()) {
			t.Fatalf("Set-Cookie %q is not the genuine cookie of %s", d.SetCookie, d.Role())
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
