package route

import (
	"crypto/rand"
	"encoding/base64"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/rollout"
	"github.com/pipit-dev/pipit/internal/testenv/fakeclock"
)

// newTestClock is a clock the tests move by hand.
func newTestClock() *fakeclock.Clock {
	return fakeclock.New(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
}

// listTestInterval is how often the tables of decision tests check their
// inFile lists, on their clock.
const listTestInterval = 10 * time.Millisecond

// testKey is a fresh random cookie key.
func testKey(t testing.TB) []byte {
	t.Helper()
	k := make([]byte, MinCookieKeyLen)
	rand.Read(k)
	return k
}

// keyedTable compiles spec for a service named checkout and returns a
// table at weight with the test backends, signing its cookies with keys
// on clock.
func keyedTable(t testing.TB, spec *v1alpha1.TrafficSpec, weight v1alpha1.Percent, keys CookieKeys, clock rollout.Clock) *Table {
	t.Helper()
	return namedTable(t, "checkout", spec, weight, keys, clock)
}

func namedTable(t testing.TB, service string, spec *v1alpha1.TrafficSpec, weight v1alpha1.Percent, keys CookieKeys, clock rollout.Clock) *Table {
	t.Helper()
	tr, err := compilePolicy(spec, service, compileOptions{log: testLogger(t), interval: listTestInterval, clock: clock, tasks: testTasks(t)})
	if err != nil {
		t.Fatal(err)
	}
	tab, err := NewTable(weight, tr, keys)
	if err != nil {
		t.Fatal(err)
	}
	tab = tab.WithUpstreams("v1", "v2", true)
	return &tab
}

// stickyValue is the value of the cookie tab issues now for role.
func stickyValue(tab *Table, role string) string {
	return setCookieValue(tab.cookies.header(role, false))
}

// setCookieValue is the cookie value of a Set-Cookie header; empty for
// none.
func setCookieValue(header string) string {
	pair, _, _ := strings.Cut(header, ";")
	_, v, _ := strings.Cut(pair, "=")
	return v
}

// routeCookie routes a request with the Cookie header h and returns the
// role it went to and the value of the cookie set on the way, if any.
func routeCookie(tab *Table, h string) (role, set string) {
	d := tab.Route(req("/", "Cookie", h))
	return d.Role(), setCookieValue(d.SetCookie)
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

// toCanaryByRule is sticky sessions with a rule to the canary that no
// test request matches: at weight 0 the canary then takes traffic (so its
// cookies count), yet only a cookie can send a request there.
var toCanaryByRule = &v1alpha1.TrafficSpec{Rules: []v1alpha1.TrafficRule{forceCanary}, StickySession: &v1alpha1.StickySession{}}

// TestStickyCookieFormat: the cookie is ROLE.EXPIRY.MAC, all of it
// cookie-safe: its expiry one TTL ahead in Unix seconds, its MAC 43
// base64url characters, another for each role.
func TestStickyCookieFormat(t *testing.T) {
	clk := newTestClock()
	tab := keyedTable(t, stickyOn, 0, CookieKeys{Current: testKey(t)}, clk)
	if want := base64.RawURLEncoding.EncodedLen(MinCookieKeyLen); macLen != want {
		t.Fatalf("macLen %d, want %d", macLen, want)
	}
	format := regexp.MustCompile(`^(stable|canary)\.([1-9][0-9]*)\.[A-Za-z0-9_-]{43}$`)
	for _, role := range []string{RoleStable, RoleCanary} {
		v := stickyValue(tab, role)
		m := format.FindStringSubmatch(v)
		if m == nil || m[1] != role || m[2] != strconv.FormatInt(clk.Now().Add(time.Hour).Unix(), 10) {
			t.Errorf("%s cookie %q: want %s.EXPIRY.MAC expiring in an hour", role, v, role)
		}
	}
	if stickyValue(tab, RoleStable)[len("stable."):] == stickyValue(tab, RoleCanary)[len("canary."):] {
		t.Error("the stable and canary cookies carry the same MAC")
	}
}

// TestStickyCookieForgeries: at weight 0 with a rule to the canary (so
// its cookies count, and only a cookie can send there), no cookie but the
// one the proxy issued with its key sends a user to the canary. Each
// forgery gets stable and a fresh, genuine stable cookie.
func TestStickyCookieForgeries(t *testing.T) {
	clk := newTestClock()
	keys := CookieKeys{Current: testKey(t)}
	tab := keyedTable(t, toCanaryByRule, 0, keys, clk)
	genuine, stableValue := stickyValue(tab, RoleCanary), stickyValue(tab, RoleStable)
	_, expiry, mac := splitCookie(t, genuine)
	_, _, stableMAC := splitCookie(t, stableValue)
	exp := strconv.FormatInt(expiry, 10)

	// The MAC spelled another way: the last of its 43 characters holds 4
	// bits and 2 unused ones, which a lax decoder ignores.
	last := strings.IndexByte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", mac[macLen-1])
	respelled := mac[:macLen-1] + string("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"[last^1])
	if a, b := decodeMAC(t, mac), decodeMAC(t, respelled); a != b || respelled == mac {
		t.Fatalf("%q and %q should decode alike", mac, respelled)
	}
	flipped := []byte(mac)
	flipped[10] ^= 1

	forgeries := map[string]string{
		"the old unsigned format":        "canary." + strconv.FormatUint(newHasher("checkout").sum("v2"), 16),
		"another installation's key":     stickyValue(keyedTable(t, toCanaryByRule, 0, CookieKeys{Current: testKey(t)}, clk), RoleCanary),
		"a key made of public values":    stickyValue(keyedTable(t, toCanaryByRule, 0, CookieKeys{Current: []byte(strings.Repeat("checkout", 4))}, clk), RoleCanary),
		"another rollout's cookie":       stickyValue(namedTable(t, "shop", toCanaryByRule, 0, keys, clk), RoleCanary),
		"stable's MAC, the role swapped": "canary." + exp + "." + stableMAC,
		"the expiry extended":            "canary." + strconv.FormatInt(expiry+3600, 10) + "." + mac,
		"the expiry brought forward":     "canary." + strconv.FormatInt(expiry-60, 10) + "." + mac,
		"the expiry with a leading zero": "canary.0" + exp + "." + mac,
		"the expiry negative":            "canary.-" + exp + "." + mac,
		"the expiry past int64":          "canary.99999999999999999999." + mac,
		"a bit of the MAC flipped":       "canary." + exp + "." + string(flipped),
		"the MAC in capitals":            "canary." + exp + "." + strings.ToUpper(mac),
		"the MAC spelled another way":    "canary." + exp + "." + respelled,
		"the MAC padded":                 "canary." + exp + "." + mac + "=",
		"the MAC cut short":              "canary." + exp + "." + mac[:macLen-1],
		"no MAC":                         "canary." + exp,
		"no expiry":                      "canary.." + mac,
		"the role in capitals":           "CANARY." + exp + "." + mac,
		"an unknown role":                "admin." + exp + "." + mac,
		"a fourth part":                  genuine + ".x",
		"the role alone":                 "canary",
		"the version":                    "v2",
		"empty":                          "",
	}
	for what, v := range forgeries {
		if role, set := routeCookie(tab, "pipit-checkout="+v); role != RoleStable || set != stableValue {
			t.Errorf("%s (%q): routed to %s, Set-Cookie %q; want stable and a fresh stable cookie", what, v, role, set)
		}
	}
	// The genuine value, bare or quoted, keeps its user and is not replaced.
	for _, h := range []string{"pipit-checkout=" + genuine, `pipit-checkout="` + genuine + `"`} {
		if role, set := routeCookie(tab, h); role != RoleCanary || set != "" {
			t.Errorf("Cookie %q: routed to %s, Set-Cookie %q", h, role, set)
		}
	}
	// A new canary version: the cookie names a version no longer serving.
	next := tab.WithUpstreams("v1", "v3", true)
	if role, set := routeCookie(&next, "pipit-checkout="+genuine); role != RoleStable || set == "" {
		t.Errorf("v2's cookie with canary v3: routed to %s, Set-Cookie %q", role, set)
	}
}

func decodeMAC(t *testing.T, s string) string {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestStickyCookieDuplicates: of several cookies of the name the first
// genuine one decides, wherever the forged ones are; only the first
// maxStickyCookies are looked at, so that forged ones cannot make a
// request cost many HMACs.
func TestStickyCookieDuplicates(t *testing.T) {
	clk := newTestClock()
	keys := CookieKeys{Current: testKey(t)}
	tab := keyedTable(t, toCanaryByRule, 0, keys, clk)
	canary, stable := "pipit-checkout="+stickyValue(tab, RoleCanary), "pipit-checkout="+stickyValue(tab, RoleStable)
	_, expiry, _ := splitCookie(t, stickyValue(tab, RoleCanary))
	forged := "pipit-checkout=canary." + strconv.FormatInt(expiry, 10) + "." + strings.Repeat("A", macLen)
	other := "pipit-checkout=" + stickyValue(keyedTable(t, toCanaryByRule, 0, CookieKeys{Current: testKey(t)}, clk), RoleCanary)
	forgedRun := func(n int) string { return strings.Repeat(forged+"; ", n) }

	for _, c := range []struct {
		name    string
		headers []string
		role    string
		set     bool
	}{
		{"forged, then genuine", []string{forged + "; " + canary}, RoleCanary, false},
		{"another key's, then genuine", []string{other + "; " + canary}, RoleCanary, false},
		{"forged and genuine in two headers", []string{forged, canary}, RoleCanary, false},
		{"genuine stable, then genuine canary", []string{stable + "; " + canary}, RoleStable, false},
		{"genuine canary, then forged", []string{canary + "; " + forged}, RoleCanary, false},
		{"forged twice", []string{forged + "; " + other}, RoleStable, true},
		{"the genuine one last of those looked at", []string{forgedRun(maxStickyCookies-1) + canary}, RoleCanary, false},
		{"the genuine one past those looked at", []string{forgedRun(maxStickyCookies) + canary}, RoleStable, true},
	} {
		r := req("/")
		for _, h := range c.headers {
			r.Header.Add("Cookie", h)
		}
		d := tab.Route(r)
		if d.Role() != c.role || (d.SetCookie != "") != c.set {
			t.Errorf("%s: routed to %s, Set-Cookie %q; want %s, a cookie set: %v", c.name, d.Role(), d.SetCookie, c.role, c.set)
		}
	}
}

// TestStickyCookieExpiry: a cookie keeps its user for its TTL on the
// server too, not only in the browser: a copy kept past it is ignored and
// replaced. A cookie that reaches further than one TTL (issued under a
// longer one) is not honoured either; a wall clock stepping back a little
// is no reason to drop a user.
func TestStickyCookieExpiry(t *testing.T) {
	clk := newTestClock()
	keys := CookieKeys{Current: testKey(t)}
	short := &v1alpha1.TrafficSpec{Rules: []v1alpha1.TrafficRule{forceCanary},
		StickySession: &v1alpha1.StickySession{TTL: &metav1.Duration{Duration: 90 * time.Second}}}
	tab := keyedTable(t, short, 0, keys, clk)
	cookie := "pipit-checkout=" + stickyValue(tab, RoleCanary)
	clk.Advance(-30 * time.Second) // the wall clock stepped back
	if role, set := routeCookie(tab, cookie); role != RoleCanary || set != "" {
		t.Fatalf("after the clock stepped back 30s: %s, Set-Cookie %q", role, set)
	}
	clk.Advance(30*time.Second + 89*time.Second)
	if role, set := routeCookie(tab, cookie); role != RoleCanary || set != "" {
		t.Fatalf("a second before the cookie expires: %s, Set-Cookie %q", role, set)
	}
	clk.Advance(time.Second)
	if role, set := routeCookie(tab, cookie); role != RoleStable || set != stickyValue(tab, RoleStable) {
		t.Fatalf("once the cookie expired: %s, Set-Cookie %q; want stable and a fresh stable cookie", role, set)
	}

	long := keyedTable(t, toCanaryByRule, 0, keys, clk) // a TTL of an hour, the same key
	if role, _ := routeCookie(tab, "pipit-checkout="+stickyValue(long, RoleCanary)); role != RoleStable {
		t.Errorf("a cookie expiring in an hour was honoured with a TTL of 90s")
	}
}

// TestStickyCookieKeyRotation: after WithCookieKeys new cookies are signed
// with the new key only, and a cookie signed with the previous one keeps
// its user for one TTL after the rotation, then no more, whatever its own
// expiry says. A second rotation drops the first key.
func TestStickyCookieKeyRotation(t *testing.T) {
	clk := newTestClock()
	r := &keyRotation{clk: clk, a: testKey(t), b: testKey(t), c: testKey(t)}
	r.tab = keyedTable(t, toCanaryByRule, 0, CookieKeys{Current: r.a}, clk)
	r.signedWithA = stickyValue(r.tab, RoleCanary) // expires at T+1h

	r.rotate(t)
	r.gracePeriodApartFromExpiry(t)
	r.gracePeriodEndsWithExpiry(t)
	r.badKeysChangeNothing(t)
}

// keyRotation is what TestStickyCookieKeyRotation's stages share: the
// clock, the keys a, b and c, the table whose keys rotate, the time of
// the first rotation and a canary cookie signed with a and one with b.
type keyRotation struct {
	clk                      *fakeclock.Clock
	a, b, c                  []byte
	tab                      *Table
	rotated                  time.Time
	signedWithA, signedWithB string
}

// setKeys gives the table the keys k, or leaves it as it was if refused.
func (r *keyRotation) setKeys(k CookieKeys) error {
	next, err := r.tab.WithCookieKeys(k)
	if err == nil {
		r.tab = &next
	}
	return err
}

// route routes a request carrying the sticky cookie v.
func (r *keyRotation) route(v string) (string, string) {
	return routeCookie(r.tab, "pipit-checkout="+v)
}

// rotate rotates from a to b ten minutes in: the cookie signed with a
// still passes, and a new cookie is signed with b only.
func (r *keyRotation) rotate(t *testing.T) {
	r.clk.Advance(10 * time.Minute)
	r.rotated = r.clk.Now()
	if err := r.setKeys(CookieKeys{Current: r.b, Previous: r.a, RotatedAt: r.rotated}); err != nil {
		t.Fatal(err)
	}
	if role, set := r.route(r.signedWithA); role != RoleCanary || set != "" {
		t.Fatalf("the previous key's cookie after the rotation: %s, Set-Cookie %q", role, set)
	}
	r.signedWithB = stickyValue(r.tab, RoleCanary)
	onlyA := keyedTable(t, toCanaryByRule, 0, CookieKeys{Current: r.a}, r.clk)
	onlyB := keyedTable(t, toCanaryByRule, 0, CookieKeys{Current: r.b}, r.clk)
	if role, _ := routeCookie(onlyB, "pipit-checkout="+r.signedWithB); role != RoleCanary {
		t.Error("a cookie issued after the rotation is not signed with the new key")
	}
	if role, _ := routeCookie(onlyA, "pipit-checkout="+r.signedWithB); role != RoleStable {
		t.Error("a cookie issued after the rotation passes with the previous key")
	}
}

// gracePeriodApartFromExpiry: the rotation is dated 20 minutes before the
// cookie was issued, so the previous key counts until T+40m while the
// cookie would last until T+1h.
func (r *keyRotation) gracePeriodApartFromExpiry(t *testing.T) {
	if err := r.setKeys(CookieKeys{Current: r.b, Previous: r.a, RotatedAt: r.rotated.Add(-30 * time.Minute)}); err != nil {
		t.Fatal(err)
	}
	r.clk.Advance(30*time.Minute - time.Second) // T+40m-1s
	if role, _ := r.route(r.signedWithA); role != RoleCanary {
		t.Fatal("the previous key's cookie was refused within one TTL of the rotation")
	}
	r.clk.Advance(time.Second)
	if role, set := r.route(r.signedWithA); role != RoleStable || set == "" {
		t.Fatalf("the previous key's cookie one TTL after the rotation: %s, Set-Cookie %q", role, set)
	}
	if role, _ := r.route(r.signedWithB); role != RoleCanary {
		t.Fatal("the current key's cookie was refused")
	}
}

// gracePeriodEndsWithExpiry: dated as it happened, the rotation's grace
// period ends with the last cookie the previous key signed; a second
// rotation, to c, drops a.
func (r *keyRotation) gracePeriodEndsWithExpiry(t *testing.T) {
	if err := r.setKeys(CookieKeys{Current: r.b, Previous: r.a, RotatedAt: r.rotated}); err != nil {
		t.Fatal(err)
	}
	r.clk.Advance(20*time.Minute - time.Second) // T+1h-1s
	if role, _ := r.route(r.signedWithA); role != RoleCanary {
		t.Fatal("the previous key's cookie was refused a second before it expired")
	}
	if err := r.setKeys(CookieKeys{Current: r.c, Previous: r.b, RotatedAt: r.clk.Now()}); err != nil {
		t.Fatal(err)
	}
	if role, _ := r.route(r.signedWithA); role != RoleStable {
		t.Error("the key before the previous one is still honoured after a second rotation")
	}
	if role, _ := r.route(r.signedWithB); role != RoleCanary {
		t.Error("the previous key's cookie was refused right after the second rotation")
	}
}

// badKeysChangeNothing: bad keys are refused and change nothing.
func (r *keyRotation) badKeysChangeNothing(t *testing.T) {
	a, c := r.a, r.c
	for _, bad := range []CookieKeys{
		{},
		{Current: c[:MinCookieKeyLen-1]},
		{Current: c, Previous: a[:8], RotatedAt: r.clk.Now()},
		{Current: c, Previous: a},
	} {
		if err := r.setKeys(bad); err == nil {
			t.Errorf("WithCookieKeys(%d-byte current, %d-byte previous, rotated %v) succeeded", len(bad.Current), len(bad.Previous), bad.RotatedAt)
		}
	}
	if role, _ := r.route(r.signedWithB); role != RoleCanary {
		t.Error("a refused WithCookieKeys changed the keys")
	}
	if r.tab.StickyTTL() != DefaultStickyTTL {
		t.Errorf("StickyTTL %s", r.tab.StickyTTL())
	}
}

// TestStickyCookieWeightZero: a canary at weight 0 that no rule sends
// anyone to takes nobody, cookie or not: a genuine canary cookie gets
// stable and a stable cookie. Stable cookies are honoured as ever. With a
// weight, or a rule to the canary, canary cookies keep their users.
func TestStickyCookieWeightZero(t *testing.T) {
	clk := newTestClock()
	keys := CookieKeys{Current: testKey(t)}
	tab := keyedTable(t, stickyOn, 0, keys, clk)
	canary, stable := stickyValue(tab, RoleCanary), stickyValue(tab, RoleStable)
	if role, set := routeCookie(tab, "pipit-checkout="+canary); role != RoleStable || set != stable {
		t.Errorf("a canary cookie at weight 0: %s, Set-Cookie %q; want stable and a stable cookie", role, set)
	}
	if role, set := routeCookie(tab, "pipit-checkout="+stable); role != RoleStable || set != "" {
		t.Errorf("a stable cookie at weight 0: %s, Set-Cookie %q", role, set)
	}
	if role, set := routeCookie(atWeight(tab, 1), "pipit-checkout="+canary); role != RoleCanary || set != "" {
		t.Errorf("a canary cookie at weight 0.001%%: %s, Set-Cookie %q", role, set)
	}
	ruled := keyedTable(t, toCanaryByRule, 0, keys, clk)
	if role, set := routeCookie(ruled, "pipit-checkout="+canary); role != RoleCanary || set != "" {
		t.Errorf("a canary cookie at weight 0 with a rule to the canary: %s, Set-Cookie %q", role, set)
	}
	// Closed, the canary honours no cookie even with a rule to it.
	closed := *ruled
	closed.closed = true
	if role, set := routeCookie(&closed, "pipit-checkout="+canary); role != RoleStable || set != stable {
		t.Errorf("a canary cookie with the canary closed: %s, Set-Cookie %q", role, set)
	}
}
