package router

import (
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/pipit-dev/pipit/api/v1alpha1"
)

func TestValueCondition(t *testing.T) {
	cases := []struct {
		name     string
		m        v1alpha1.StringMatch
		prefixes bool
		want     valueMatch
		match    []string
		miss     []string
	}{
		{name: "exact", m: v1alpha1.StringMatch{Exact: "a.b"}, want: valueMatch{matchExact, "a.b"}},
		{name: "native prefix", m: v1alpha1.StringMatch{Prefix: "/api"}, prefixes: true, want: valueMatch{matchPrefix, "/api"}},
		{
			name: "prefix as regex", m: v1alpha1.StringMatch{Prefix: "v1.2+"}, want: valueMatch{matchRegex, `^v1\.2\+.*$`},
			match: []string{"v1.2+", "v1.2+beta"}, miss: []string{"v1x2+", "xv1.2+"},
		},
		{
			name: "suffix", m: v1alpha1.StringMatch{Suffix: "@example.com"}, prefixes: true, want: valueMatch{matchRegex, `^.*@example\.com$`},
			match: []string{"ann@example.com"}, miss: []string{"ann@exampleXcom", "ann@example.com.evil"},
		},
		{
			name: "regex is anchored", m: v1alpha1.StringMatch{Regex: "beta|gamma"}, want: valueMatch{matchRegex, `^(?:beta|gamma)$`},
			match: []string{"beta", "gamma"}, miss: []string{"betamax", "xgamma"},
		},
		{
			name: "case-insensitive regex", m: v1alpha1.StringMatch{Regex: "(?i)beta"}, want: valueMatch{matchRegex, `^(?:(?i)beta)$`},
			match: []string{"BeTa"}, miss: []string{"BeTaX"},
		},
		{
			name: "in", m: v1alpha1.StringMatch{In: []string{"a.b", "c*"}}, want: valueMatch{matchRegex, `^(?:a\.b|c\*)$`},
			match: []string{"a.b", "c*"}, miss: []string{"axb", "cc", "a.bc*"},
		},
		{name: "presence", m: v1alpha1.StringMatch{}, want: valueMatch{matchRegex, ".*"}, match: []string{"", "anything"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := valueCondition(c.m, c.prefixes)
			if err != nil {
				t.Fatal(err)
			}
			if got != c.want {
				t.Fatalf("got %+v, want %+v", got, c.want)
			}
			if got.kind != matchRegex {
				return
			}
			re := regexp.MustCompile(got.value)
			for _, s := range c.match {
				if !fullMatch(re, s) {
					t.Errorf("%s does not match %q", got.value, s)
				}
			}
			for _, s := range c.miss {
				if fullMatch(re, s) {
					t.Errorf("%s matches %q", got.value, s)
				}
			}
		})
	}
	if _, err := valueCondition(v1alpha1.StringMatch{InFile: "users.txt"}, true); err == nil {
		t.Error("inFile was accepted: the controller reads no local files")
	}
}

// fullMatch matches as Envoy does: the whole value.
func fullMatch(re *regexp.Regexp, s string) bool {
	return regexp.MustCompile("^(?:" + re.String() + ")$").MatchString(s)
}

// cookiesAllCases are cookie conditions with Cookie headers that must
// and must not match the regular expression cookiesAll makes of them.
var cookiesAllCases = []struct {
	name    string
	cookies map[string]v1alpha1.StringMatch
	match   []string
	miss    []string
}{
	{
		name:    "exact",
		cookies: map[string]v1alpha1.StringMatch{"beta": {Exact: "1"}},
		match:   []string{"beta=1", "a=2; beta=1", "beta=1; a=2", "a=2;beta=1;c=3"},
		miss:    []string{"beta=12", "xbeta=1", "a=beta=1", "a=2", "", "beta=2; other=1"},
	},
	{
		name:    "the name is literal",
		cookies: map[string]v1alpha1.StringMatch{"a.b": {Exact: "1"}},
		match:   []string{"a.b=1"},
		miss:    []string{"axb=1"},
	},
	{
		name:    "prefix stays in its cookie",
		cookies: map[string]v1alpha1.StringMatch{"seg": {Prefix: "gold"}},
		match:   []string{"seg=gold", "seg=golden; x=1"},
		miss:    []string{"seg=silver; x=gold", "seg=; gold=1"},
	},
	{
		name:    "suffix stays in its cookie",
		cookies: map[string]v1alpha1.StringMatch{"user": {Suffix: "@corp"}},
		match:   []string{"user=ann@corp", "x=1; user=bob@corp"},
		miss:    []string{"user=ann; y=@corp", "user=ann@corp.evil"},
	},
	{
		name:    "a regex cannot run into the next cookie",
		cookies: map[string]v1alpha1.StringMatch{"user": {Regex: ".*x"}},
		match:   []string{"user=abx", "user=x; b=1"},
		miss:    []string{"user=1; b=x", "user=1;b=x"},
	},
	{
		name:    "a regex's anchors mean the value's ends",
		cookies: map[string]v1alpha1.StringMatch{"v": {Regex: "^(?i)beta$"}},
		match:   []string{"v=beta", "a=1; v=BETA; b=2"},
		miss:    []string{"v=betamax", "v=xbeta"},
	},
	{
		name:    "a negated class excludes the semicolon",
		cookies: map[string]v1alpha1.StringMatch{"v": {Regex: "[^a]+z"}},
		match:   []string{"v=bcz", "v=bz; w=1"},
		miss:    []string{"v=az", "v=b; q=z"},
	},
	{
		name:    "in",
		cookies: map[string]v1alpha1.StringMatch{"tier": {In: []string{"gold", "plat+"}}},
		match:   []string{"tier=gold", "tier=plat+"},
		miss:    []string{"tier=silver", "tier=plattt"},
	},
	{
		name:    "presence",
		cookies: map[string]v1alpha1.StringMatch{"beta": {}},
		match:   []string{"beta=", "beta=anything; x=1"},
		miss:    []string{"x=beta"},
	},
	{
		name:    "every cookie, in any order",
		cookies: map[string]v1alpha1.StringMatch{"a": {Exact: "1"}, "b": {Exact: "2"}},
		match:   []string{"a=1; b=2", "b=2; a=1", "b=2; z=9; a=1", "a=1;b=2"},
		miss:    []string{"a=1", "b=2", "a=1; b=3", "a=12; b=2"},
	},
}

func TestCookiesAll(t *testing.T) {
	for _, c := range cookiesAllCases {
		t.Run(c.name, func(t *testing.T) {
			s, err := cookiesAll(c.cookies)
			if err != nil {
				t.Fatal(err)
			}
			re := regexp.MustCompile(s)
			for _, h := range c.match {
				if !fullMatch(re, h) {
					t.Errorf("%s does not match %q", s, h)
				}
			}
			for _, h := range c.miss {
				if fullMatch(re, h) {
					t.Errorf("%s matches %q", s, h)
				}
			}
		})
	}
	four := map[string]v1alpha1.StringMatch{"a": {}, "b": {}, "c": {}, "d": {}}
	if _, err := cookiesAll(four); err == nil {
		t.Error("four cookie conditions were accepted: 24 orders spelt out")
	}
}

func TestCookiesAny(t *testing.T) {
	s, err := cookiesAny(map[string]v1alpha1.StringMatch{"a": {Exact: "1"}, "b": {Prefix: "x"}})
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(s)
	for _, h := range []string{"a=1", "q=0; b=xy", "b=x; a=2"} {
		if !fullMatch(re, h) {
			t.Errorf("%s does not match %q", s, h)
		}
	}
	for _, h := range []string{"a=2", "b=y", ""} {
		if fullMatch(re, h) {
			t.Errorf("%s matches %q", s, h)
		}
	}
}

func TestWholePercents(t *testing.T) {
	cases := []struct {
		w              v1alpha1.Percent
		stable, canary int64
	}{
		{0, 100, 0},
		{1, 99, 1},       // 0.001% is some traffic: never rounded to none
		{499, 99, 1},     // 0.499%
		{1500, 98, 2},    // 1.5% rounds half up
		{5000, 95, 5},    // 5%
		{49_400, 51, 49}, // 49.4%
		{99_500, 1, 99},  // 99.5% is not all traffic
		{99_999, 1, 99},
		{100_000, 0, 100},
	}
	for _, c := range cases {
		s, cn := wholePercents(c.w)
		if s != c.stable || cn != c.canary || s+cn != 100 {
			t.Errorf("wholePercents(%s) = %d/%d, want %d/%d", c.w, s, cn, c.stable, c.canary)
		}
	}
}

func TestRuleNames(t *testing.T) {
	rules := []v1alpha1.TrafficRule{
		{Name: "Beta testers!"}, {}, {Name: "beta testers"}, {Name: "1"}, {Name: "???"},
		{Name: strings.Repeat("x", 300)},
	}
	got := ruleNames(rules)
	want := []string{"pipit-beta-testers", "pipit-1", "pipit-beta-testers-2", "pipit-1-2", "pipit-4", "pipit-" + strings.Repeat("x", 53)}
	if !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	name := regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	for _, n := range got {
		if !name.MatchString(n) || len(n) > maxRuleNameLength {
			t.Errorf("%q is no valid section name", n)
		}
	}
}

func TestHeaderConditions(t *testing.T) {
	must, not, err := headerConditions(v1alpha1.TrafficRule{Headers: map[string]v1alpha1.StringMatch{
		"X-Beta": {Exact: "1"}, "X-Legacy": {Not: true},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := must["x-beta"]; !ok || len(must) != 1 {
		t.Errorf("must = %v, want x-beta", must)
	}
	if _, ok := not["x-legacy"]; !ok || len(not) != 1 {
		t.Errorf("not = %v, want x-legacy", not)
	}
	if _, _, err := headerConditions(v1alpha1.TrafficRule{Headers: map[string]v1alpha1.StringMatch{
		"X-Beta": {Exact: "1"}, "x-beta": {Exact: "2"},
	}}); err == nil {
		t.Error("two conditions on one header were accepted")
	}
	if _, _, err := headerConditions(v1alpha1.TrafficRule{
		Headers: map[string]v1alpha1.StringMatch{"Cookie": {Regex: ".*"}},
		Cookies: map[string]v1alpha1.StringMatch{"beta": {}},
	}); err == nil {
		t.Error("a Cookie header condition next to cookie conditions was accepted")
	}
}

func TestCheckWeight(t *testing.T) {
	for _, w := range []v1alpha1.Percent{-1, v1alpha1.FullWeight + 1} {
		if checkWeight(w) == nil {
			t.Errorf("weight %d accepted", w)
		}
	}
	for _, w := range []v1alpha1.Percent{0, 1, v1alpha1.FullWeight} {
		if err := checkWeight(w); err != nil {
			t.Errorf("weight %d: %v", w, err)
		}
	}
}
