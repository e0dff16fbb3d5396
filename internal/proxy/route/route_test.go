package route

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/pipit-dev/pipit/api/v1alpha1"
)

// TestRouteAllocations: the decisions of the request path allocate
// nothing, for a plain weighted split and with a header key, three rules
// and a sticky cookie, genuine or forged: checking it costs one HMAC on
// a pooled state, and the cookie issued is signed once a second.
func TestRouteAllocations(t *testing.T) {
	plain := testTable(5_000)
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	if n := testing.AllocsPerRun(1000, func() { plain.Route(r) }); n != 0 {
		t.Errorf("plain weighted route: %v allocations", n)
	}
	tab := trafficTable(t, keyAndRules(), 5_000)
	kr := userRequest("user-42")
	kr.Header.Set("X-Customer-Tier", "pro")
	if n := testing.AllocsPerRun(1000, func() { tab.Route(kr) }); n != 0 {
		t.Errorf("header key and three rules: %v allocations", n)
	}
	// Under the race detector sync.Pool drops some of the HMAC states it
	// is given back, and checking a cookie then keys one afresh; it must
	// still cost less than keying one for every request.
	var limit float64
	if raceEnabled {
		key := testKey(t)
		limit = testing.AllocsPerRun(100, func() { newMACKey(key).sign(nil, 1) }) - 1
	}
	_, expiry, _ := splitCookie(t, stickyValue(tab, RoleCanary))
	for _, c := range []struct{ what, value string }{
		{"a stable cookie", stickyValue(tab, RoleStable)},
		{"a canary cookie", stickyValue(tab, RoleCanary)},
		{"a forged cookie", "canary." + strconv.FormatInt(expiry, 10) + "." + strings.Repeat("A", macLen)},
	} {
		kr.Header.Set("Cookie", "a=b; pipit-checkout="+c.value)
		if n := testing.AllocsPerRun(1000, func() { tab.Route(kr) }); n > limit {
			t.Errorf("%s: %v allocations", c.what, n)
		}
	}
}

// keyAndRules is a header key, three seed rules and sticky sessions.
func keyAndRules() *v1alpha1.TrafficSpec {
	return &v1alpha1.TrafficSpec{
		UserKey:       byUserID.UserKey,
		Rules:         []v1alpha1.TrafficRule{forceCanary, enterprise, internalUsers},
		StickySession: &v1alpha1.StickySession{},
	}
}

// BenchmarkRoutePlain is the decision for a plain weighted request: no
// TrafficSpec, a weight that needs a draw.
func BenchmarkRoutePlain(b *testing.B) {
	tab := testTable(5_000)
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	b.ReportAllocs()
	for b.Loop() {
		tab.Route(r)
	}
}

// BenchmarkRouteKeyRules is the decision with a header user key and three
// header rules that all miss, so that every rule is tried and the key
// hashed; sticky sessions are on but the request has no cookie yet.
func BenchmarkRouteKeyRules(b *testing.B) {
	tab := trafficTable(b, keyAndRules(), 5_000)
	r := userRequest("3f9a1c52-7d4e-4b8a-9e21-5c6d7e8f9a0b")
	r.Header.Set("X-Customer-Tier", "pro")
	r.Header.Set("X-User-Email", "someone@example.com")
	b.ReportAllocs()
	for b.Loop() {
		tab.Route(r)
	}
}

// BenchmarkRouteStickyCookie is a returning browser: three rules miss and
// the sticky cookie, among others, decides.
func BenchmarkRouteStickyCookie(b *testing.B) {
	tab := trafficTable(b, keyAndRules(), 5_000)
	r := req("/", "Cookie", "_ga=GA1.2.3; session=abc; pipit-checkout="+stickyValue(tab, RoleCanary)+"; theme=dark")
	b.ReportAllocs()
	for b.Loop() {
		tab.Route(r)
	}
}
