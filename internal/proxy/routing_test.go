package proxy

import (
	"crypto/rand"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/proxy/route"
	"github.com/pipit-dev/pipit/internal/testenv/fakeclock"
)

// Test helpers and specs of the routing tests through a Proxy; the
// decisions themselves are tested in the route package.

var byUserID = &v1alpha1.TrafficSpec{UserKey: []v1alpha1.UserKeySource{{Header: "X-User-ID"}}}

var stickyOn = &v1alpha1.TrafficSpec{StickySession: &v1alpha1.StickySession{}}

var (
	forceCanary = v1alpha1.TrafficRule{Name: "force", To: v1alpha1.DestinationCanary,
		Headers: map[string]v1alpha1.StringMatch{"canary": {Exact: "true"}}}
	internalUsers = v1alpha1.TrafficRule{Name: "internal", To: v1alpha1.DestinationCanary,
		Headers: map[string]v1alpha1.StringMatch{"X-User-Email": {Suffix: "@company.com"}}}
)

// toCanaryByRule is sticky sessions with a rule to the canary that no
// test request matches: at weight 0 the canary then takes traffic (so its
// cookies count), yet only a cookie can send a request there.
var toCanaryByRule = &v1alpha1.TrafficSpec{Rules: []v1alpha1.TrafficRule{forceCanary}, StickySession: &v1alpha1.StickySession{}}

func rules(rs ...v1alpha1.TrafficRule) *v1alpha1.TrafficSpec {
	return &v1alpha1.TrafficSpec{Rules: rs}
}

// newTestClock is a clock the tests move by hand.
func newTestClock() *fakeclock.Clock {
	return fakeclock.New(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
}

// testKey is a fresh random cookie key.
func testKey(t testing.TB) []byte {
	t.Helper()
	k := make([]byte, route.MinCookieKeyLen)
	rand.Read(k)
	return k
}

// setCookieValue is the cookie value of a Set-Cookie header; empty for
// none.
func setCookieValue(header string) string {
	pair, _, _ := strings.Cut(header, ";")
	_, v, _ := strings.Cut(pair, "=")
	return v
}

// splitCookie cuts a cookie value into role, expiry and MAC.
func splitCookie(t testing.TB, v string) (role string, expiry int64, mac string) {
	t.Helper()
	parts := strings.Split(v, ".")
	if len(parts) != 3 {
		t.Fatalf("cookie %q: want ROLE.EXPIRY.MAC", v)
	}
	expiry, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return parts[0], expiry, parts[2]
}

// TestStickySameUserThroughProxy sends each user's requests through a
// real proxy on loopback: the version header never changes for a user.
func TestStickySameUserThroughProxy(t *testing.T) {
	stable, canary := newUpstream(t, "v1"), newUpstream(t, "v2")
	c := canary.upstream(t)
	p := newProxy(t, Config{Stable: stable.upstream(t), Canary: &c, Weight: 50 * v1alpha1.PercentScale,
		Name: "checkout", Traffic: byUserID})
	addr := front(t, p)
	client := &http.Client{Timeout: 10 * time.Second}
	versions := map[string]int{}
	for u := range 40 {
		var first string
		for range 5 {
			req, _ := http.NewRequest(http.MethodGet, addr, nil)
			req.Header.Set("X-User-ID", "user-"+strconv.Itoa(u))
			res, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			v := res.Header.Get(DefaultVersionHeader)
			if first == "" {
				first = v
				versions[v]++
			} else if v != first {
				t.Fatalf("user-%d got %s after %s", u, v, first)
			}
		}
	}
	if versions["v1"] == 0 || versions["v2"] == 0 {
		t.Fatalf("users per version at 50%%: %v", versions)
	}
}

// TestSegmentRollbackOverridesRules: once the canary is closed nobody
// gets it, whatever the rules say; a new canary version opens again.
func TestSegmentRollbackOverridesRules(t *testing.T) {
	stable, canary := newUpstream(t, "v1"), newUpstream(t, "v2")
	c := canary.upstream(t)
	p := newProxy(t, Config{Stable: stable.upstream(t), Canary: &c, Name: "checkout",
		Traffic: rules(forceCanary, internalUsers)})
	addr := front(t, p)
	version := func(kv ...string) string {
		t.Helper()
		r, _ := http.NewRequest(http.MethodGet, addr, nil)
		for i := 0; i+1 < len(kv); i += 2 {
			r.Header.Set(kv[i], kv[i+1])
		}
		res, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.Header.Get(DefaultVersionHeader)
	}
	if v := version("Canary", "true"); v != "v2" {
		t.Fatalf("before the rollback the override got %s", v)
	}
	p.SetCanaryAllowed(false)
	for _, h := range [][]string{{"Canary", "true"}, {"X-User-Email", "ana@company.com"}} {
		if v := version(h...); v != "v1" {
			t.Fatalf("after the rollback %v got %s", h, v)
		}
	}
	// The same version again stays closed; a new one opens.
	if err := p.setUpstreams(stable.upstream(t), &c); err != nil {
		t.Fatal(err)
	}
	if v := version("Canary", "true"); v != "v1" {
		t.Fatalf("re-setting the rolled-back canary reopened it: %s", v)
	}
	next := Upstream{Version: "v3", URL: c.URL}
	if err := p.setUpstreams(stable.upstream(t), &next); err != nil {
		t.Fatal(err)
	}
	if v := version("Canary", "true"); v != "v3" {
		t.Fatalf("a new canary version is still closed: %s", v)
	}
	// Retiring the canary leaves rules nothing to send to.
	if err := p.setUpstreams(stable.upstream(t), nil); err != nil {
		t.Fatal(err)
	}
	if v := version("Canary", "true"); v != "v1" {
		t.Fatalf("with no canary the override got %s", v)
	}
}
