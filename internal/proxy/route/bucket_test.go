package route

import (
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strconv"
	"testing"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/rollout"
)

// trafficTable compiles spec for a service named checkout and returns a
// table at weight with the test backends.
func trafficTable(t testing.TB, spec *v1alpha1.TrafficSpec, weight v1alpha1.Percent) *Table {
	t.Helper()
	return keyedTable(t, spec, weight, CookieKeys{Current: testKey(t)}, rollout.SystemClock{})
}

func atWeight(tab *Table, w v1alpha1.Percent) *Table {
	c := *tab
	c.weight = w
	return &c
}

var byUserID = &v1alpha1.TrafficSpec{UserKey: []v1alpha1.UserKeySource{{Header: "X-User-ID"}}}

func userRequest(id string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set("X-User-ID", id)
	return r
}

// TestMonotonicRamp ramps the canary from 1% to 100% over a million user
// keys, by 1% up to 10% and by 5% from there (28 steps, to keep the test
// short under the race detector): no key ever moves from the canary back
// to stable, and at every step the canary's share of keys is the weight
// within 0.2 percentage points (the empirical CDF of a million uniform
// buckets strays about 0.14 points at most, by the Kolmogorov bound).
func TestMonotonicRamp(t *testing.T) {
	const n = 1_000_000
	const tolerance = 0.2 // percentage points
	keys := make([]string, n)
	for i := range keys {
		keys[i] = "user-" + strconv.Itoa(i)
	}
	base := trafficTable(t, byUserID, 0)
	inCanary := make([]bool, n)
	ramp := []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	for pct := 15; pct <= 100; pct += 5 {
		ramp = append(ramp, pct)
	}
	for _, pct := range ramp {
		tab := atWeight(base, v1alpha1.Percent(pct)*v1alpha1.PercentScale)
		count := 0
		for i, k := range keys {
			c := tab.keyToCanary(k)
			if inCanary[i] && !c {
				t.Fatalf("at %d%% key %s moved from the canary back to stable", pct, k)
			}
			inCanary[i] = c
			if c {
				count++
			}
		}
		if share := 100 * float64(count) / n; math.Abs(share-float64(pct)) > tolerance {
			t.Errorf("at %d%% the canary has %.3f%% of the keys; want within %.1f points", pct, share, tolerance)
		}
		// The request path decides as keyToCanary does.
		for i := pct; i < n; i += 9973 {
			if got := tab.Route(userRequest(keys[i])).Canary; got != inCanary[i] {
				t.Fatalf("at %d%% route sends %s to canary=%v; keyToCanary says %v", pct, keys[i], got, inCanary[i])
			}
		}
	}
	for i, c := range inCanary {
		if !c {
			t.Fatalf("at 100%% key %s is not in the canary", keys[i])
		}
	}
}

// TestStickyUserFineWeights checks the split at weights finer than one
// percent, where the canary's buckets are few: 200,000 keys, within 0.05
// points (at 0.1% the standard deviation is 0.007 points).
func TestStickyUserFineWeights(t *testing.T) {
	const n = 200_000
	base := trafficTable(t, byUserID, 0)
	for _, w := range []v1alpha1.Percent{0, 1, 100, 500, 1000, 2500} {
		tab := atWeight(base, w)
		count := 0
		for i := range n {
			if tab.keyToCanary("u" + strconv.Itoa(i)) {
				count++
			}
		}
		share := 100 * float64(count) / n
		if math.Abs(share-w.Float()) > 0.05 {
			t.Errorf("at %s the canary has %.4f%% of the keys", w, share)
		}
		if w == 0 && count != 0 {
			t.Errorf("at 0%% %d keys went to the canary", count)
		}
	}
}

// TestStickySameUser: at a given weight every request of a user goes to
// the same version, whatever else the requests carry.
func TestStickySameUser(t *testing.T) {
	tab := trafficTable(t, byUserID, 30*v1alpha1.PercentScale)
	got := map[string]bool{}
	for i := range 20 {
		for u := range 500 {
			id := "user-" + strconv.Itoa(u)
			r := userRequest(id)
			r.URL.Path = "/page/" + strconv.Itoa(i)
			r.RemoteAddr = "192.0.2." + strconv.Itoa(i) + ":1234"
			toCanary := tab.Route(r).Canary
			if first, seen := got[id]; seen && first != toCanary {
				t.Fatalf("request %d of %s went to canary=%v, the first to %v", i, id, toCanary, first)
			}
			got[id] = toCanary
		}
	}
	canaries := 0
	for _, c := range got {
		if c {
			canaries++
		}
	}
	if canaries == 0 || canaries == len(got) {
		t.Fatalf("%d of %d users in the canary at 30%%; the split does not depend on the user", canaries, len(got))
	}
}

// TestStickyUserSalt: the same users fall into unrelated buckets under
// two salts, so two rollouts do not canary the same users.
func TestStickyUserSalt(t *testing.T) {
	a, b := newHasher("checkout"), newHasher("search")
	const n = 100_000
	both := 0
	for i := range n {
		k := "user-" + strconv.Itoa(i)
		if a.bucket(k) < 10_000 && b.bucket(k) < 10_000 {
			both++
		}
	}
	// Independent 10% shares overlap on 1% of users (sd 0.03 points).
	if share := 100 * float64(both) / n; share < 0.8 || share > 1.2 {
		t.Fatalf("%.2f%% of users are in both 10%% canaries; want about 1%%", share)
	}
	salted := trafficTable(t, &v1alpha1.TrafficSpec{UserKey: byUserID.UserKey, Salt: "search"}, 0)
	if salted.policy.hash != b {
		t.Fatal("TrafficSpec.Salt is not the salt")
	}
	if trafficTable(t, byUserID, 0).policy.hash != newHasher("checkout") {
		t.Fatal("the default salt is not the service's name")
	}
}

// TestStickyUserRandomWithoutKey: requests without a key are split at
// random; 200,000 draws at 5% land within 0.3 points (6 standard
// deviations).
func TestStickyUserRandomWithoutKey(t *testing.T) {
	tab := trafficTable(t, byUserID, 5*v1alpha1.PercentScale)
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	const n = 200_000
	count := 0
	for range n {
		if tab.Route(r).Canary {
			count++
		}
	}
	if share := 100 * float64(count) / n; math.Abs(share-5) > 0.3 {
		t.Fatalf("%.2f%% of keyless requests went to the canary at 5%%", share)
	}
}

// TestStickyUserKeySources: sources are tried in order, and an empty
// value counts as absent.
func TestStickyUserKeySources(t *testing.T) {
	srcs, err := compileKeySources([]v1alpha1.UserKeySource{{Header: "x-user-id"}, {Cookie: "uid"}, {Query: "user"}, {ClientIP: true}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, header, cookie, target, remote, want string
	}{
		{"header first", "h1", "uid=c1", "/?user=q1", "192.0.2.1:9", "h1"},
		{"empty header falls through", "", "uid=c1", "/?user=q1", "192.0.2.1:9", "c1"},
		{"cookie among others", "", "a=1; uid=c2; b=2", "/?user=q1", "192.0.2.1:9", "c2"},
		{"query", "", "other=1", "/?a=b&user=q%201", "192.0.2.1:9", "q 1"},
		{"client IP last", "", "", "/", "192.0.2.1:9", "192.0.2.1"},
		{"IPv6 client", "", "", "/", "[2001:db8::1]:443", "2001:db8::1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, tc.target, nil)
			r.RemoteAddr = tc.remote
			if tc.header != "" {
				r.Header.Set("X-User-Id", tc.header)
			} else {
				r.Header["X-User-Id"] = []string{""}
			}
			if tc.cookie != "" {
				r.Header.Set("Cookie", tc.cookie)
			}
			got, ok := userKey(r, srcs, nil)
			if !ok || got != tc.want {
				t.Fatalf("key %q, %v; want %q", got, ok, tc.want)
			}
		})
	}
	if _, ok := userKey(httptest.NewRequest(http.MethodGet, "/", nil), srcs[:3], nil); ok {
		t.Fatal("a request without any source has a key")
	}
	if _, err := compileKeySources([]v1alpha1.UserKeySource{{Header: "a", Cookie: "b"}}); err == nil {
		t.Fatal("a source with two fields compiled")
	}
}

// FuzzUserKey: the key is what net/http itself reads from the same
// request (Header.Get, Request.Cookie, URL.Query().Get, the peer's host
// without an IPv6 zone),
// first non-empty wins, and its bucket is in range and repeatable.
func FuzzUserKey(f *testing.F) {
	f.Add("alice", "uid=bob", "user=carol", "192.0.2.1:80")
	f.Add("", "uid=\"quoted\"; uid=second", "user=a%20b&user=c", "[::1]:1")
	f.Add("", "uid=bad\\value; uid=ok", "a;b=c&user=%zz&user=d", "no-port")
	f.Add("", " ; uid = spaced ;", "user=&user=x", "")
	f.Add("", "", "", "")
	f.Add("", "", "", "[::0%0]]:0") // a bracket in the zone: netip reads it, net.SplitHostPort does not
	f.Add("", "", "", "[::0]:0")    // written as netip writes it
	srcs, err := compileKeySources([]v1alpha1.UserKeySource{{Header: "X-User-ID"}, {Cookie: "uid"}, {Query: "user"}, {ClientIP: true}})
	if err != nil {
		f.Fatal(err)
	}
	h := newHasher("fuzz")
	f.Fuzz(func(t *testing.T, header, cookie, rawQuery, remote string) {
		r := &http.Request{Method: http.MethodGet, URL: &url.URL{Path: "/", RawQuery: rawQuery}, RemoteAddr: remote,
			Header: http.Header{"X-User-Id": {header}, "Cookie": {cookie}}}
		want := r.Header.Get("X-User-ID")
		if want == "" {
			if c, err := r.Cookie("uid"); err == nil {
				want = c.Value
			}
		}
		if want == "" {
			want = r.URL.Query().Get("user")
		}
		if want == "" {
			// The peer's host as the standard library reads it
			// (netip.ParseAddrPort, which takes any zone, else
			// net.SplitHostPort, else the whole address), written as
			// netip writes it, without a zone: a zone names an
			// interface of the proxy's machine, not the client.
			want = remote
			if ap, err := netip.ParseAddrPort(remote); err == nil {
				want = ap.Addr().String()
			} else if host, _, err := net.SplitHostPort(remote); err == nil {
				want = host
			}
			if ip, err := netip.ParseAddr(want); err == nil {
				want = ip.WithZone("").String()
			}
		}
		got, ok := userKey(r, srcs, nil)
		if got != want || ok != (want != "") {
			t.Fatalf("key %q, %v; net/http reads %q", got, ok, want)
		}
		if b := h.bucket(got); b < 0 || b >= buckets || b != h.bucket(got) {
			t.Fatalf("bucket %d of %q", b, got)
		}
	})
}

func TestClientIPDropsThePortAndTheZone(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.1:1234":     "192.0.2.1",
		"[2001:db8::1]:1234": "2001:db8::1",
		"[fe80::1%eth0]:80":  "fe80::1",
		"[0::%[]:1234":       "::", // a bracket in the zone, which net.SplitHostPort refuses
		"192.0.2.1":          "192.0.2.1",
		"[::0]:80":           "::",
		"@":                  "@", // a unix socket's peer
	} {
		if got := ClientIP(in); got != want {
			t.Errorf("ClientIP(%q) = %q, want %q", in, got, want)
		}
	}
}
