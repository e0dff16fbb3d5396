package router

import (
	"errors"
	"fmt"
	"maps"
	"regexp"
	"regexp/syntax"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pipit-dev/pipit/api/v1alpha1"
)

// What the Kubernetes routers share: the names and labels of what pipit
// writes, the weights, and the translation of pipit's traffic rules into
// the conditions the Gateway API and Istio take.

// Labels on the objects pipit creates; the same keys as package target's,
// which routers do not import.
const (
	labelManagedBy = "app.kubernetes.io/managed-by"
	labelRollout   = "pipit.dev/rollout"
	labelRole      = "pipit.dev/role"
	managedByPipit = "pipit"
	roleStable     = "stable"
	roleCanary     = "canary"
)

// rulePrefix starts the name of every rule or route pipit adds to a
// user's object, which is how pipit finds them again to remove them.
const rulePrefix = "pipit-"

// maxCookieConditions bounds the cookie conditions of one rule: all of
// them must hold, in whatever order the cookies come, and a regular
// expression without lookahead spells out every order (n! of them).
const maxCookieConditions = 3

// applyTimeout bounds one Apply or Remove of a Kubernetes router: a few
// calls to the API server, retried on conflicts.
const applyTimeout = 30 * time.Second

// isPipitRule says whether a rule or route was added by pipit.
func isPipitRule(name string) bool { return strings.HasPrefix(name, rulePrefix) }

// ownedMeta is the metadata of an object pipit creates for the rollout:
// its labels, and the Rollout as controller so that deleting the Rollout
// deletes it.
func ownedMeta(owner *v1alpha1.Rollout, namespace, name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{
		Name:      name,
		Namespace: namespace,
		Labels:    map[string]string{labelManagedBy: managedByPipit, labelRollout: owner.Name},
		OwnerReferences: []metav1.OwnerReference{
			*metav1.NewControllerRef(owner, v1alpha1.SchemeGroupVersion.WithKind("Rollout")),
		},
	}
}

// checkWeight refuses a weight outside 0 to 100%, which no router can
// express.
func checkWeight(w v1alpha1.Percent) error {
	if w < 0 || w > v1alpha1.FullWeight {
		return fmt.Errorf("weight %s is outside 0%% to 100%%", w)
	}
	return nil
}

// wholePercents rounds a weight to whole percent, for routers whose weights
// must add up to 100, without ever rounding a canary that gets some
// traffic to none, or one that does not get all of it to all.
func wholePercents(w v1alpha1.Percent) (stable, canary int64) {
	canary = (int64(w) + v1alpha1.PercentScale/2) / v1alpha1.PercentScale
	switch {
	case w > 0 && canary == 0:
		canary = 1
	case w < v1alpha1.FullWeight && canary == 100:
		canary = 99
	}
	return 100 - canary, canary
}

// ruleNames names the rules pipit adds for the traffic rules: pipit- and
// the rule's name made fit for an object name, or its index when it has
// none, each name unique.
func ruleNames(rules []v1alpha1.TrafficRule) []string {
	used := map[string]bool{}
	names := make([]string, len(rules))
	for i, r := range rules {
		base := sanitizeName(r.Name)
		if base == "" {
			base = strconv.Itoa(i)
		}
		names[i] = uniqueName(rulePrefix+base, used)
	}
	return names
}

// uniqueName returns name, or name with a number appended, whichever is
// not used yet, and marks it used.
func uniqueName(name string, used map[string]bool) string {
	n := name
	for i := 2; used[n]; i++ {
		n = name + "-" + strconv.Itoa(i)
	}
	used[n] = true
	return n
}

// maxRuleNameLength keeps generated names (with a counter appended) within
// the 253 characters of a Gateway API section name, and short to read.
const maxRuleNameLength = 63

// sanitizeName turns a rule's free-text name into lower-case letters,
// digits and single dashes, as section names and Istio route names take.
func sanitizeName(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		case b.Len() > 0 && !strings.HasSuffix(b.String(), "-"):
			b.WriteByte('-')
		}
	}
	out := b.String()
	if len(out) > maxRuleNameLength-len(rulePrefix)-4 {
		out = out[:maxRuleNameLength-len(rulePrefix)-4]
	}
	return strings.Trim(out, "-")
}

// matchKind is how a router compares a value.
type matchKind int

const (
	matchExact matchKind = iota
	matchPrefix
	matchRegex
)

// valueMatch is one condition on a value as a router takes it.
type valueMatch struct {
	kind  matchKind
	value string
}

// presentRegex matches any value: a condition with no operator asks only
// that the header or parameter be there.
const presentRegex = ".*"

// valueCondition translates a condition on a whole value. Suffixes, lists
// and, unless the router matches prefixes itself, prefixes become regular
// expressions. Each regular expression is anchored at both ends, so it
// means the same whether the router matches the whole value (Envoy) or
// searches it. Negation is the caller's: few fields can express it.
func valueCondition(m v1alpha1.StringMatch, prefixes bool) (valueMatch, error) {
	switch {
	case m.InFile != "":
		return valueMatch{}, errors.New("inFile is read by pipit's own proxy only: list the values with in")
	case m.Exact != "":
		return valueMatch{matchExact, m.Exact}, nil
	case m.Prefix != "" && prefixes:
		return valueMatch{matchPrefix, m.Prefix}, nil
	case m.Prefix != "":
		return valueMatch{matchRegex, "^" + regexp.QuoteMeta(m.Prefix) + ".*$"}, nil
	case m.Suffix != "":
		return valueMatch{matchRegex, "^.*" + regexp.QuoteMeta(m.Suffix) + "$"}, nil
	case m.Regex != "":
		return valueMatch{matchRegex, "^(?:" + m.Regex + ")$"}, nil
	case len(m.In) > 0:
		return valueMatch{matchRegex, "^" + alternatives(m.In) + "$"}, nil
	}
	return valueMatch{matchRegex, presentRegex}, nil
}

// alternatives is a group matching any of the values literally.
func alternatives(values []string) string {
	quoted := make([]string, len(values))
	for i, v := range values {
		quoted[i] = regexp.QuoteMeta(v)
	}
	return "(?:" + strings.Join(quoted, "|") + ")"
}

// cookieHeader is the request header that carries cookies; routers match
// cookies with a regular expression on it, having no cookie match of their
// own.
const cookieHeader = "cookie"

// Pieces of a regular expression on a Cookie header ("a=1; b=2"): what
// may come before a cookie, between two cookies, and after one.
const (
	cookiesBefore  = `(?:.*;\s*)?`
	cookiesBetween = `\s*;(?:.*;)?\s*`
	cookiesAfter   = `(?:\s*;.*)?`
	// cookieValue is any cookie value: one never holds a semicolon.
	cookieValue = `[^;]*`
)

// cookiesAll is a regular expression on the Cookie header that holds when
// every condition holds, each on its own cookie, in any order.
func cookiesAll(cookies map[string]v1alpha1.StringMatch) (string, error) {
	pairs, err := cookiePairs(cookies)
	if err != nil {
		return "", err
	}
	if len(pairs) > maxCookieConditions {
		return "", fmt.Errorf("a rule can set at most %d cookie conditions in Kubernetes, not %d", maxCookieConditions, len(pairs))
	}
	var orders []string
	for _, p := range permutations(pairs) {
		orders = append(orders, cookiesBefore+strings.Join(p, cookiesBetween)+cookiesAfter)
	}
	return "^(?:" + strings.Join(orders, "|") + ")$", nil
}

// cookiesAny is a regular expression on the Cookie header that holds when
// any of the conditions holds: negated, it says that none does.
func cookiesAny(cookies map[string]v1alpha1.StringMatch) (string, error) {
	pairs, err := cookiePairs(cookies)
	if err != nil {
		return "", err
	}
	for i, p := range pairs {
		pairs[i] = cookiesBefore + p + cookiesAfter
	}
	return "^(?:" + strings.Join(pairs, "|") + ")$", nil
}

// cookiePairs turns each condition into a regular expression matching
// name=value for one cookie, in the order of the names.
func cookiePairs(cookies map[string]v1alpha1.StringMatch) ([]string, error) {
	var pairs []string
	for _, name := range sortedKeys(cookies) {
		v, err := cookieValueRegex(cookies[name])
		if err != nil {
			return nil, fmt.Errorf("cookie %s: %w", name, err)
		}
		pairs = append(pairs, regexp.QuoteMeta(name)+"="+v)
	}
	return pairs, nil
}

// cookieValueRegex translates a condition on a cookie's value into a
// regular expression that cannot run past the value's end into the next
// cookie.
func cookieValueRegex(m v1alpha1.StringMatch) (string, error) {
	switch {
	case m.InFile != "":
		return "", errors.New("inFile is read by pipit's own proxy only: list the values with in")
	case m.Exact != "":
		return regexp.QuoteMeta(m.Exact), nil
	case m.Prefix != "":
		return regexp.QuoteMeta(m.Prefix) + cookieValue, nil
	case m.Suffix != "":
		return cookieValue + regexp.QuoteMeta(m.Suffix), nil
	case m.Regex != "":
		return confineToCookie(m.Regex)
	case len(m.In) > 0:
		return alternatives(m.In), nil
	}
	return cookieValue, nil
}

// confineToCookie rewrites a regular expression on a whole cookie value
// so that, inside the expression on the whole header, it still matches
// one value: no character it matches can be the semicolon that ends a
// value, and its anchors, which the value's ends now stand for, match the
// empty string.
func confineToCookie(re string) (string, error) {
	r, err := syntax.Parse(re, syntax.Perl)
	if err != nil {
		return "", fmt.Errorf("regex %q: %w", re, err)
	}
	confine(r)
	return "(?:" + r.String() + ")", nil
}

func confine(r *syntax.Regexp) {
	switch r.Op {
	case syntax.OpBeginLine, syntax.OpEndLine, syntax.OpBeginText, syntax.OpEndText:
		r.Op = syntax.OpEmptyMatch
	case syntax.OpAnyChar:
		r.Op, r.Rune = syntax.OpCharClass, withoutRune([]rune{0, unicode.MaxRune}, ';')
	case syntax.OpAnyCharNotNL:
		r.Op, r.Rune = syntax.OpCharClass, withoutRune([]rune{0, '\n' - 1, '\n' + 1, unicode.MaxRune}, ';')
	case syntax.OpCharClass:
		r.Rune = withoutRune(r.Rune, ';')
	}
	for _, s := range r.Sub {
		confine(s)
	}
}

// withoutRune removes c from a character class's ranges (pairs of low and
// high, inclusive).
func withoutRune(ranges []rune, c rune) []rune {
	var out []rune
	for i := 0; i+1 < len(ranges); i += 2 {
		lo, hi := ranges[i], ranges[i+1]
		if c < lo || c > hi {
			out = append(out, lo, hi)
			continue
		}
		if lo < c {
			out = append(out, lo, c-1)
		}
		if c < hi {
			out = append(out, c+1, hi)
		}
	}
	return out
}

// permutations lists every order of s.
func permutations(s []string) [][]string {
	if len(s) <= 1 {
		return [][]string{slices.Clone(s)}
	}
	var out [][]string
	for i := range s {
		rest := slices.Concat(s[:i], s[i+1:])
		for _, p := range permutations(rest) {
			out = append(out, append([]string{s[i]}, p...))
		}
	}
	return out
}

// headerConditions splits a rule's header conditions, with names in lower
// case, into those that must hold and the negated ones, and refuses two
// conditions on one header (names differ only in case) and a condition
// on the Cookie header next to cookie conditions.
func headerConditions(r v1alpha1.TrafficRule) (must, not map[string]v1alpha1.StringMatch, err error) {
	must, not = map[string]v1alpha1.StringMatch{}, map[string]v1alpha1.StringMatch{}
	for _, name := range sortedKeys(r.Headers) {
		lower := strings.ToLower(name)
		if _, dup := must[lower]; dup {
			return nil, nil, fmt.Errorf("header %s has two conditions (header names ignore case)", name)
		}
		if _, dup := not[lower]; dup {
			return nil, nil, fmt.Errorf("header %s has two conditions (header names ignore case)", name)
		}
		if lower == cookieHeader && len(r.Cookies) > 0 {
			return nil, nil, errors.New("a condition on the Cookie header cannot go with cookie conditions: both match that header")
		}
		if m := r.Headers[name]; m.Not {
			not[lower] = m
		} else {
			must[lower] = m
		}
	}
	return must, not, nil
}

// cookieConditions splits a rule's cookie conditions into those that must
// hold and the negated ones.
func cookieConditions(r v1alpha1.TrafficRule) (must, not map[string]v1alpha1.StringMatch) {
	must, not = map[string]v1alpha1.StringMatch{}, map[string]v1alpha1.StringMatch{}
	for name, m := range r.Cookies {
		if m.Not {
			not[name] = m
		} else {
			must[name] = m
		}
	}
	return must, not
}

// sortedKeys is a map's keys in order: what routers write must not
// change from one Apply to the next, or each would rewrite the object.
func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }

// ruleError names the traffic rule a translation error is about.
func ruleError(i int, r v1alpha1.TrafficRule, err error) error {
	if r.Name != "" {
		return fmt.Errorf("traffic rule %d (%s): %w", i, r.Name, err)
	}
	return fmt.Errorf("traffic rule %d: %w", i, err)
}

// defaultStickyTTL is a sticky-session cookie's lifetime when the spec
// does not say: the same as pipit's proxy (DefaultStickyTTL of
// internal/proxy/route, a package the Kubernetes routers do not pull in).
const defaultStickyTTL = time.Hour

// stickyCookie is the sticky-session cookie's name and lifetime, with
// the defaults of pipit's proxy.
func stickyCookie(owner *v1alpha1.Rollout, s *v1alpha1.StickySession) (name string, ttl metav1.Duration) {
	name, ttl = s.CookieName, metav1.Duration{Duration: defaultStickyTTL}
	if name == "" {
		name = "pipit-" + owner.Name
	}
	if s.TTL != nil {
		ttl = *s.TTL
	}
	return name, ttl
}
