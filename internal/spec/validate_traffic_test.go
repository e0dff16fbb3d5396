package spec

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	yaml "go.yaml.in/yaml/v3"

	"github.com/pipit-dev/pipit/api/v1alpha1"
)

// trafficExample is the traffic section of docs/spec.md: every seed case,
// one line each.
const trafficExample = `
userKey: [{header: X-User-ID}, {cookie: session}, {clientIP: true}]
salt: checkout-2024
rules:
  - {name: force-canary, to: canary, headers: {canary: {exact: "true"}}}
  - {name: enterprise, to: stable, headers: {X-Customer-Tier: {exact: enterprise}}}
  - {name: internal, to: canary, headers: {X-User-Email: {suffix: "@company.com"}}}
  - {name: beta, to: canary, headers: {X-User-ID: {in: [u-17, u-42], inFile: /etc/pipit/beta-testers.txt}}}
  - {name: segments, to: canary, headers: {X-User-Segment: {in: [free-tier, new-users]}}}
  - {name: new-api, to: canary, path: {prefix: /api/v2/}, method: {in: [GET, HEAD]}, cookies: {legacy: {not: true}}}
  - {name: android, to: stable, headers: {User-Agent: {regex: "(?i).*android.*"}}, queryParams: {debug: {}}}
stickySession: {cookieName: pipit-checkout, ttl: 1h}
mirror: {percent: 10, maxBodyBytes: 65536, methods: [GET, HEAD]}
`

// decodeTraffic reads a traffic section as the rollout file parser does.
func decodeTraffic(t *testing.T, src string) *v1alpha1.TrafficSpec {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(src), &doc); err != nil {
		t.Fatal(err)
	}
	d := &decoder{file: "traffic.yaml", pos: map[string]position{}}
	v, ok := d.value(doc.Content[0], reflect.TypeFor[v1alpha1.TrafficSpec](), "spec.service.traffic")
	if !ok || len(d.errs) > 0 {
		t.Fatalf("decoding: %v", d.errs)
	}
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var ts v1alpha1.TrafficSpec
	if err := json.Unmarshal(raw, &ts); err != nil {
		t.Fatal(err)
	}
	return &ts
}

func TestValidateTrafficExample(t *testing.T) {
	ts := decodeTraffic(t, trafficExample)
	if errs := ValidateTraffic(ts, "spec.service.traffic"); len(errs) > 0 {
		t.Fatalf("the example is refused:\n%v", errs)
	}
	if len(ts.Rules) != 7 || ts.Rules[0].Headers["canary"].Exact != "true" || ts.Mirror.Percent != 10*v1alpha1.PercentScale ||
		ts.StickySession.TTL.Duration != time.Hour || !ts.UserKey[2].ClientIP || !ts.Rules[5].Cookies["legacy"].Not {
		t.Fatalf("decoded %+v", ts)
	}
	if ValidateTraffic(nil, "x") != nil {
		t.Fatal("no traffic section is a problem")
	}
}

func TestValidateTraffic(t *testing.T) {
	for _, tc := range []struct {
		name, src, field, reason string
	}{
		{"empty source", `userKey: [{}]`, "spec.service.traffic.userKey[0]", "set one of header, cookie, query or clientIP"},
		{"two sources", `userKey: [{header: A, cookie: b}]`, "spec.service.traffic.userKey[0]", "sets header and cookie; give each its own entry"},
		{"client IP not last", `userKey: [{clientIP: true}, {header: A}]`, "spec.service.traffic.userKey[0].clientIP", "put it last"},
		{"bad header name", `userKey: [{header: "X User"}]`, "spec.service.traffic.userKey[0].header", `"X User" is not a valid header name`},
		{"bad cookie name", `userKey: [{cookie: "a;b"}]`, "spec.service.traffic.userKey[0].cookie", "not a valid cookie name"},
		{"no destination", `rules: [{headers: {A: {exact: x}}}]`, "spec.service.traffic.rules[0].to", "is required: canary or stable"},
		{"bad destination", `rules: [{to: both, headers: {A: {exact: x}}}]`, "spec.service.traffic.rules[0].to", `must be canary or stable, not "both"`},
		{"no condition", `rules: [{to: canary}]`, "spec.service.traffic.rules[0]", "matches every request"},
		{"two operators", `rules: [{to: canary, headers: {A: {exact: x, suffix: y}}}]`, "spec.service.traffic.rules[0].headers[A]", "sets exact and suffix"},
		{"bad regex", `rules: [{to: canary, headers: {A: {regex: "(x"}}}]`, "spec.service.traffic.rules[0].headers[A].regex", "is not an RE2 regular expression"},
		{"Perl regex", `rules: [{to: canary, headers: {A: {regex: "(?=x)"}}}]`, "spec.service.traffic.rules[0].headers[A].regex", "is not an RE2 regular expression"},
		{"long regex", `rules: [{to: canary, headers: {A: {regex: "` + strings.Repeat("a", 1025) + `"}}}]`, "spec.service.traffic.rules[0].headers[A].regex", "at most 1024"},
		{"bad rule header", `rules: [{to: canary, headers: {"A B": {}}}]`, "spec.service.traffic.rules[0].headers[A B]", "not a valid header name"},
		{"bad rule cookie", `rules: [{to: canary, cookies: {"a=b": {}}}]`, "spec.service.traffic.rules[0].cookies[a=b]", "not a valid cookie name"},
		{"path presence", `rules: [{to: canary, path: {not: true}}]`, "spec.service.traffic.rules[0].path", "needs one of exact, prefix"},
		{"relative path", `rules: [{to: canary, path: {prefix: api}}]`, "spec.service.traffic.rules[0].path", `paths start with /: "api" never matches`},
		{"lower-case method", `rules: [{to: canary, method: {in: [GET, post]}}]`, "spec.service.traffic.rules[0].method", `methods are upper case: "post" never matches; write "POST"`},
		{"sticky cookie name", `stickySession: {cookieName: "a b"}`, "spec.service.traffic.stickySession.cookieName", "not a valid cookie name"},
		{"sticky ttl", `stickySession: {ttl: 0s}`, "spec.service.traffic.stickySession.ttl", "must be positive"},
		{"mirror zero", `mirror: {percent: 0}`, "spec.service.traffic.mirror.percent", "must be more than 0 and at most 100, not 0"},
		{"mirror over", `mirror: {percent: 101}`, "spec.service.traffic.mirror.percent", "not 101"},
		{"mirror body", `mirror: {percent: 5, maxBodyBytes: 999999999}`, "spec.service.traffic.mirror.maxBodyBytes", "must be from 0"},
		{"mirror method", `mirror: {percent: 5, methods: [GET, head]}`, "spec.service.traffic.mirror.methods[1]", `"head" is not an HTTP method: write it upper case`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			errs := ValidateTraffic(decodeTraffic(t, tc.src), "spec.service.traffic")
			for _, e := range errs {
				if e.Field == tc.field && strings.Contains(e.Reason, tc.reason) {
					return
				}
			}
			t.Fatalf("want %s: %s; got\n%v", tc.field, tc.reason, errs)
		})
	}
}

// TestValidateTrafficListTogether: in and inFile together are one list.
func TestValidateTrafficListTogether(t *testing.T) {
	ts := decodeTraffic(t, `rules: [{to: canary, headers: {A: {in: [x], inFile: /tmp/x}}}]`)
	if errs := ValidateTraffic(ts, "t"); len(errs) > 0 {
		t.Fatalf("in with inFile refused: %v", errs)
	}
}
