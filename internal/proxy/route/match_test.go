package route

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/testenv/nettest"
)

// The seed's cases, each one line of a spec.
var (
	forceCanary = v1alpha1.TrafficRule{Name: "force", To: v1alpha1.DestinationCanary,
		Headers: map[string]v1alpha1.StringMatch{"canary": {Exact: "true"}}}
	enterprise = v1alpha1.TrafficRule{Name: "enterprise", To: v1alpha1.DestinationStable,
		Headers: map[string]v1alpha1.StringMatch{"X-Customer-Tier": {Exact: "enterprise"}}}
	internalUsers = v1alpha1.TrafficRule{Name: "internal", To: v1alpha1.DestinationCanary,
		Headers: map[string]v1alpha1.StringMatch{"X-User-Email": {Suffix: "@company.com"}}}
	betaInline = v1alpha1.TrafficRule{Name: "beta", To: v1alpha1.DestinationCanary,
		Headers: map[string]v1alpha1.StringMatch{"X-User-ID": {In: []string{"u-17", "u-42"}}}}
	segments = v1alpha1.TrafficRule{Name: "segments", To: v1alpha1.DestinationCanary,
		Headers: map[string]v1alpha1.StringMatch{"X-User-Segment": {In: []string{"free-tier", "new-users"}}}}
)

func rules(rs ...v1alpha1.TrafficRule) *v1alpha1.TrafficSpec {
	return &v1alpha1.TrafficSpec{Rules: rs}
}

// req builds a GET of target with headers given as name, value pairs.
func req(target string, kv ...string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, target, nil)
	for i := 0; i+1 < len(kv); i += 2 {
		r.Header.Add(kv[i], kv[i+1])
	}
	return r
}

// routesTo asserts where tab sends r.
func routesTo(t *testing.T, tab *Table, r *http.Request, want string) {
	t.Helper()
	if got := tab.Route(r).Role(); got != want {
		t.Errorf("%s %s %v: routed to %s, want %s", r.Method, r.URL, r.Header, got, want)
	}
}

func TestSegmentInternalUsers(t *testing.T) {
	for _, w := range []v1alpha1.Percent{0, 50 * v1alpha1.PercentScale} {
		tab := trafficTable(t, rules(internalUsers), w)
		routesTo(t, tab, req("/", "X-User-Email", "ana@company.com"), RoleCanary)
	}
	tab := trafficTable(t, rules(internalUsers), 0)
	routesTo(t, tab, req("/", "X-User-Email", "ana@company.com.evil.example"), RoleStable)
	routesTo(t, tab, req("/", "X-User-Email", "ana@example.com"), RoleStable)
	routesTo(t, tab, req("/"), RoleStable)
	// Any of several values of the header counts.
	routesTo(t, tab, req("/", "X-User-Email", "a@example.com", "X-User-Email", "b@company.com"), RoleCanary)
}

func TestSegmentBetaTestersInline(t *testing.T) {
	tab := trafficTable(t, rules(betaInline), 0)
	routesTo(t, tab, req("/", "X-User-ID", "u-42"), RoleCanary)
	routesTo(t, tab, req("/", "X-User-ID", "u-17"), RoleCanary)
	routesTo(t, tab, req("/", "X-User-ID", "u-4"), RoleStable)
	routesTo(t, tab, req("/", "X-User-ID", "u-420"), RoleStable)
}

// TestSegmentBetaTestersFile: a list read from a file is reloaded when the
// file changes, and kept when the file goes away.
func TestSegmentBetaTestersFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "beta.txt")
	write := func(s string) {
		t.Helper()
		// Write then rename, as editors and config management do, so
		// that a check never reads half a file.
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}
	write("# beta testers\nu-1\n  u-2  \n\n")
	rule := v1alpha1.TrafficRule{To: v1alpha1.DestinationCanary,
		Headers: map[string]v1alpha1.StringMatch{"X-User-ID": {In: []string{"u-inline"}, InFile: path}}}
	clk := newTestClock()
	tab := keyedTable(t, rules(rule), 0, CookieKeys{Current: testKey(t)}, clk)
	file := tab.policy.rules[0].conds[0].m.file
	// check moves the proxy's clock past the list's interval, so that the
	// next request starts a check, and waits for that check to end.
	check := func() {
		t.Helper()
		clk.Advance(listTestInterval)
		tab.Route(req("/", "X-User-ID", "u-0"))
		nettest.Eventually(t, "the list check to end", func() bool { return !file.checking.Load() })
	}
	routesTo(t, tab, req("/", "X-User-ID", "u-1"), RoleCanary)
	routesTo(t, tab, req("/", "X-User-ID", "u-2"), RoleCanary)
	routesTo(t, tab, req("/", "X-User-ID", "u-inline"), RoleCanary)
	routesTo(t, tab, req("/", "X-User-ID", "# beta testers"), RoleStable)
	routesTo(t, tab, req("/", "X-User-ID", "u-3"), RoleStable)

	write("u-2\nu-3\n")
	toCanary := func(id string) bool { return tab.Route(req("/", "X-User-ID", id)).Canary }
	if toCanary("u-3") {
		t.Error("the list was reloaded before its interval passed")
	}
	check()
	if !toCanary("u-3") || toCanary("u-1") {
		t.Error("the list was not reloaded")
	}
	routesTo(t, tab, req("/", "X-User-ID", "u-2"), RoleCanary)
	routesTo(t, tab, req("/", "X-User-ID", "u-inline"), RoleCanary)

	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	// Several checks find the file gone, and keep the values they had.
	for range 5 {
		check()
	}
	routesTo(t, tab, req("/", "X-User-ID", "u-3"), RoleCanary)
	write("u-9\n")
	check()
	if !toCanary("u-9") || toCanary("u-3") {
		t.Error("the list did not come back")
	}

	missing := v1alpha1.TrafficRule{To: v1alpha1.DestinationCanary,
		Headers: map[string]v1alpha1.StringMatch{"X-User-ID": {InFile: filepath.Join(t.TempDir(), "nope.txt")}}}
	if _, err := compilePolicy(rules(missing), "x", compileOptions{log: testLogger(t), interval: time.Second}); err == nil {
		t.Fatal("a list file that does not exist compiled")
	}
}

func TestSegmentAttribute(t *testing.T) {
	tab := trafficTable(t, rules(segments), 0)
	routesTo(t, tab, req("/", "X-User-Segment", "free-tier"), RoleCanary)
	routesTo(t, tab, req("/", "X-User-Segment", "new-users"), RoleCanary)
	routesTo(t, tab, req("/", "X-User-Segment", "pro"), RoleStable)
	routesTo(t, tab, req("/", "x-user-segment", "free-tier"), RoleCanary) // header names have no case
	routesTo(t, tab, req("/", "X-User-Segment", "Free-Tier"), RoleStable) // values do
}

// TestSegmentHeaderOverride: canary: "true" sends to the canary whatever
// the weight and the user's bucket say.
func TestSegmentHeaderOverride(t *testing.T) {
	spec := &v1alpha1.TrafficSpec{UserKey: byUserID.UserKey, Rules: []v1alpha1.TrafficRule{forceCanary}}
	tab := trafficTable(t, spec, 0)
	routesTo(t, tab, req("/", "Canary", "true", "X-User-ID", "u-1"), RoleCanary)
	routesTo(t, tab, req("/", "canary", "false", "X-User-ID", "u-1"), RoleStable)
	routesTo(t, tab, req("/", "X-User-ID", "u-1"), RoleStable)
}

// TestSegmentPinStable: enterprise customers stay on stable even at 100%.
func TestSegmentPinStable(t *testing.T) {
	spec := &v1alpha1.TrafficSpec{UserKey: byUserID.UserKey, Rules: []v1alpha1.TrafficRule{enterprise},
		Mirror: &v1alpha1.Mirror{Percent: v1alpha1.FullWeight}}
	tab := trafficTable(t, spec, v1alpha1.FullWeight)
	d := tab.Route(req("/", "X-Customer-Tier", "enterprise", "X-User-ID", "u-1"))
	if d.Canary || d.Mirror {
		t.Fatalf("enterprise request: routed to %s, mirrored %v; want stable, not mirrored", d.Role(), d.Mirror)
	}
	routesTo(t, tab, req("/", "X-Customer-Tier", "startup"), RoleCanary)
}

// TestSegmentRuleOrder: the first rule that matches decides.
func TestSegmentRuleOrder(t *testing.T) {
	both := req("/", "Canary", "true", "X-Customer-Tier", "enterprise")
	routesTo(t, trafficTable(t, rules(forceCanary, enterprise), 0), both, RoleCanary)
	routesTo(t, trafficTable(t, rules(enterprise, forceCanary), v1alpha1.FullWeight), both, RoleStable)
}

// TestSegmentNot: not inverts a condition, and an absent header satisfies
// it.
func TestSegmentNot(t *testing.T) {
	notEnterprise := v1alpha1.TrafficRule{To: v1alpha1.DestinationCanary,
		Headers: map[string]v1alpha1.StringMatch{"X-Customer-Tier": {Exact: "enterprise", Not: true}}}
	tab := trafficTable(t, rules(notEnterprise), 0)
	routesTo(t, tab, req("/", "X-Customer-Tier", "enterprise"), RoleStable)
	routesTo(t, tab, req("/", "X-Customer-Tier", "pro"), RoleCanary)
	routesTo(t, tab, req("/"), RoleCanary)

	absent := v1alpha1.TrafficRule{To: v1alpha1.DestinationCanary,
		Headers: map[string]v1alpha1.StringMatch{"X-Legacy-Client": {Not: true}}}
	tab = trafficTable(t, rules(absent), 0)
	routesTo(t, tab, req("/"), RoleCanary)
	routesTo(t, tab, req("/", "X-Legacy-Client", ""), RoleStable)
}

// TestSegmentParts covers each part of a request and each operator.
func TestSegmentParts(t *testing.T) {
	for _, tc := range []struct {
		name  string
		rule  v1alpha1.TrafficRule
		match *http.Request
		miss  *http.Request
	}{
		{"cookie exact", v1alpha1.TrafficRule{Cookies: map[string]v1alpha1.StringMatch{"plan": {Exact: "beta"}}},
			req("/", "Cookie", "a=1; plan=beta"), req("/", "Cookie", "plan=betamax")},
		{"cookie present", v1alpha1.TrafficRule{Cookies: map[string]v1alpha1.StringMatch{"beta": {}}},
			req("/", "Cookie", "beta="), req("/", "Cookie", "alpha=1")},
		{"query in", v1alpha1.TrafficRule{QueryParams: map[string]v1alpha1.StringMatch{"flag": {In: []string{"new ui"}}}},
			req("/?x=1&flag=new+ui"), req("/?flag=old")},
		{"path prefix", v1alpha1.TrafficRule{Path: &v1alpha1.StringMatch{Prefix: "/api/v2/"}},
			req("/api/v2/orders"), req("/api/v1/orders")},
		{"path regex is whole", v1alpha1.TrafficRule{Path: &v1alpha1.StringMatch{Regex: `/orders/[0-9]+`}},
			req("/orders/42"), req("/orders/42/items")},
		{"method in", v1alpha1.TrafficRule{Method: &v1alpha1.StringMatch{In: []string{"GET", "HEAD"}}},
			req("/"), httptest.NewRequest(http.MethodPost, "/", nil)},
		{"header regex ignoring case", v1alpha1.TrafficRule{Headers: map[string]v1alpha1.StringMatch{"User-Agent": {Regex: `(?i).*android.*`}}},
			req("/", "User-Agent", "Mozilla (Linux; ANDROID 14)"), req("/", "User-Agent", "curl/8")},
		{"all conditions hold", v1alpha1.TrafficRule{Method: &v1alpha1.StringMatch{Exact: "GET"},
			Headers: map[string]v1alpha1.StringMatch{"X-Beta": {}}},
			req("/", "X-Beta", "1"), req("/")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.rule.To = v1alpha1.DestinationCanary
			tab := trafficTable(t, rules(tc.rule), 0)
			routesTo(t, tab, tc.match, RoleCanary)
			routesTo(t, tab, tc.miss, RoleStable)
		})
	}
}

func TestSegmentCompileErrors(t *testing.T) {
	hdr := func(m v1alpha1.StringMatch) map[string]v1alpha1.StringMatch {
		return map[string]v1alpha1.StringMatch{"X-A": m}
	}
	for _, tc := range []struct {
		name string
		rule v1alpha1.TrafficRule
		want string
	}{
		{"no destination", v1alpha1.TrafficRule{Headers: hdr(v1alpha1.StringMatch{Exact: "1"})}, "to must be canary or stable"},
		{"no condition", v1alpha1.TrafficRule{To: v1alpha1.DestinationCanary}, "matches every request"},
		{"two operators", v1alpha1.TrafficRule{To: v1alpha1.DestinationCanary, Headers: hdr(v1alpha1.StringMatch{Exact: "1", Prefix: "2"})}, "not several"},
		{"bad regex", v1alpha1.TrafficRule{To: v1alpha1.DestinationCanary, Headers: hdr(v1alpha1.StringMatch{Regex: "(a"})}, "regex"},
		{"unbalanced regex", v1alpha1.TrafficRule{To: v1alpha1.DestinationCanary, Headers: hdr(v1alpha1.StringMatch{Regex: ")|(.*"})}, "regex"},
		{"path presence", v1alpha1.TrafficRule{To: v1alpha1.DestinationCanary, Path: &v1alpha1.StringMatch{}}, "needs exact"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := compilePolicy(rules(tc.rule), "x", compileOptions{log: testLogger(t), interval: time.Second})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v; want one about %q", err, tc.want)
			}
		})
	}
}

// FuzzMatch checks a condition on a header, a cookie and a query
// parameter against an oracle: net/http's own parsing of the request and
// the plain string functions. A match must hold exactly when some value
// net/http reads matches, not must invert it, and nothing may panic.
func FuzzMatch(f *testing.F) {
	f.Add(uint8(1), "true", "true", "t=true", "q=true", false)
	f.Add(uint8(3), "@company.com", "a@company.com", `t="b@company.com"; t=x`, "q=a%40company.com", false)
	f.Add(uint8(4), `u-[0-9]+`, "u-12", "t=u-1; t=u-x", "q=u-1&q=u-2", true)
	f.Add(uint8(5), "free-tier,new-users", "new-users", "t=free-tier", "q=new-users;x", false)
	f.Add(uint8(0), "", "", "t", "q", true)
	f.Add(uint8(2), "/", "/x", "t=/x; t=\\bad", "q=%zz&q=/", false)
	f.Fuzz(func(t *testing.T, op uint8, pattern, headerValue, cookie, rawQuery string, not bool) {
		sm := v1alpha1.StringMatch{Not: not}
		oracle := func(string) bool { return true } // no operator: presence
		switch op % 6 {
		case 1:
			sm.Exact = pattern
			oracle = func(v string) bool { return v == pattern }
		case 2:
			sm.Prefix = pattern
			oracle = func(v string) bool { return strings.HasPrefix(v, pattern) }
		case 3:
			sm.Suffix = pattern
			oracle = func(v string) bool { return strings.HasSuffix(v, pattern) }
		case 4:
			sm.Regex = pattern
			re, err := regexp.Compile(pattern)
			if err != nil || len(pattern) > v1alpha1.MaxRegexLength {
				if _, cerr := compileMatcher(sm, compileOptions{}); cerr == nil {
					t.Fatalf("regex %q compiled in a rule", pattern)
				}
				return
			}
			// Leftmost-longest finds a match of the whole value
			// whenever there is one.
			re.Longest()
			oracle = func(v string) bool {
				loc := re.FindStringIndex(v)
				return loc != nil && loc[0] == 0 && loc[1] == len(v)
			}
		case 5:
			sm.In = strings.Split(pattern, ",")
			oracle = func(v string) bool { return slices.Contains(sm.In, v) }
		}
		if pattern == "" && op%6 != 5 {
			oracle = func(string) bool { return true } // an empty operand is no operator
		}
		m, err := compileMatcher(sm, compileOptions{})
		if err != nil {
			t.Fatalf("compile %+v: %v", sm, err)
		}
		r := &http.Request{Method: http.MethodGet, URL: &url.URL{Path: "/", RawQuery: rawQuery},
			Header: http.Header{"X-T": {headerValue}, "Cookie": {cookie}}}
		var cookies []string
		for _, c := range r.CookiesNamed("t") {
			cookies = append(cookies, c.Value)
		}
		for _, tc := range []struct {
			part   part
			name   string
			values []string
		}{
			{partHeader, "X-T", r.Header["X-T"]},
			{partCookie, "t", cookies},
			{partQuery, "q", r.URL.Query()["q"]},
		} {
			c := condition{part: tc.part, name: tc.name, m: m, not: not}
			want := slices.ContainsFunc(tc.values, oracle) != not
			if got := c.holds(r); got != want {
				t.Fatalf("%s %q with %+v: holds %v, want %v (values %q)", describePart(tc.part, tc.name), pattern, sm, got, want, tc.values)
			}
		}
	})
}
