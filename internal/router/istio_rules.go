package router

import (
	"fmt"
	"reflect"
	"strings"

	"k8s.io/apimachinery/pkg/runtime"

	"github.com/pipit-dev/pipit/api/v1alpha1"
)

// The routes pipit adds to a VirtualService for the traffic rules: each
// rule translated into an Istio HTTPMatchRequest, narrowing the matches of
// the user's routes it applies to.

// pipitRoutes are the routes for the traffic rules: for each traffic rule
// and managed route, a copy of the route narrowed by the rule's conditions
// and sending everything to one version.
func (i *Istio) pipitRoutes(user []map[string]any, managed []int) ([]any, error) {
	if i.plan.Traffic == nil {
		return nil, nil
	}
	names := ruleNames(i.plan.Traffic.Rules)
	used := map[string]bool{}
	var out []any
	for n, tr := range i.plan.Traffic.Rules {
		ours, err := istioMatch(tr)
		if err != nil {
			return nil, ruleError(n, tr, err)
		}
		at := 1
		if tr.To == v1alpha1.DestinationStable {
			at = 0
		}
		for _, m := range managed {
			src := user[m]
			matches, err := combineIstioMatches(src, ours)
			if err != nil {
				return nil, fmt.Errorf("http route %d: %w", m, err)
			}
			if len(matches) == 0 {
				i.log.Warn("a traffic rule cannot narrow an http route's matches (URIs not inside one another, different methods or conditions on one header, or a URI rewrite): no pipit route for that route", "trafficRule", n, "route", m)
				continue
			}
			route, _ := runtime.DeepCopyJSONValue(src).(map[string]any)
			i.dropMirror(route)
			dest, _ := runtime.DeepCopyJSONValue(src["route"].([]any)[at]).(map[string]any)
			dest["weight"] = int64(100)
			route["name"] = uniqueName(names[n], used)
			route["match"] = matches
			route["route"] = []any{dest}
			out = append(out, route)
		}
	}
	return out, nil
}

// istioMatch translates a traffic rule into an Istio HTTPMatchRequest.
// Header names are lower case, as Istio asks; query parameters take no
// prefix, so a prefix there becomes a regular expression.
func istioMatch(r v1alpha1.TrafficRule) (map[string]any, error) {
	must, not, err := headerConditions(r)
	if err != nil {
		return nil, err
	}
	headers, err := istioStringMatches(must, true)
	if err != nil {
		return nil, fmt.Errorf("header %w", err)
	}
	without, err := istioStringMatches(not, true)
	if err != nil {
		return nil, fmt.Errorf("header %w", err)
	}
	cookies, notCookies := cookieConditions(r)
	if len(cookies) > 0 {
		re, err := cookiesAll(cookies)
		if err != nil {
			return nil, err
		}
		headers[cookieHeader] = map[string]any{"regex": re}
	}
	if len(notCookies) > 0 {
		re, err := cookiesAny(notCookies)
		if err != nil {
			return nil, err
		}
		without[cookieHeader] = map[string]any{"regex": re}
	}
	for name, q := range r.QueryParams {
		if q.Not {
			return nil, fmt.Errorf("query parameter %s: Istio negates header conditions only", name)
		}
	}
	query, err := istioStringMatches(r.QueryParams, false)
	if err != nil {
		return nil, fmt.Errorf("query parameter %w", err)
	}
	m := map[string]any{}
	for key, v := range map[string]map[string]any{"headers": headers, "withoutHeaders": without, "queryParams": query} {
		if len(v) > 0 {
			m[key] = v
		}
	}
	for key, c := range map[string]*v1alpha1.StringMatch{"uri": r.Path, "method": r.Method} {
		if c == nil {
			continue
		}
		if c.Not {
			return nil, fmt.Errorf("%s: Istio negates header conditions only", key)
		}
		v, err := valueCondition(*c, true)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", key, err)
		}
		m[key] = istioStringMatch(v)
	}
	return m, nil
}

// istioStringMatches translates conditions by name; a failure starts with
// the name.
func istioStringMatches(conds map[string]v1alpha1.StringMatch, prefixes bool) (map[string]any, error) {
	out := map[string]any{}
	for name, c := range conds {
		v, err := valueCondition(c, prefixes)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		out[name] = istioStringMatch(v)
	}
	return out, nil
}

func istioStringMatch(v valueMatch) map[string]any {
	key := map[matchKind]string{matchExact: "exact", matchPrefix: "prefix", matchRegex: "regex"}[v.kind]
	return map[string]any{key: v.value}
}

// combineIstioMatches is every match of a user's route narrowed by
// pipit's: requests that both select. A route without matches matches
// everything. Pairs that cannot both hold in one match (URIs neither
// inside the other, different methods, two conditions on one header or
// parameter) are left out, and so is narrowing the URI of a route that
// rewrites it, which would change what the rewrite replaces.
func combineIstioMatches(route map[string]any, ours map[string]any) ([]any, error) {
	user, _ := route["match"].([]any)
	if len(user) == 0 {
		user = []any{map[string]any{}}
	}
	rewrite, _ := route["rewrite"].(map[string]any)
	_, fixed := rewrite["uri"]
	if _, regex := rewrite["uriRegexRewrite"]; regex {
		fixed = true
	}
	var out []any
	for n, u := range user {
		um, ok := u.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("match %d is not an object", n)
		}
		if m, ok := combineIstioMatch(um, ours, fixed); ok {
			out = append(out, m)
		}
	}
	return out, nil
}

func combineIstioMatch(u, o map[string]any, fixedURI bool) (map[string]any, bool) {
	out, _ := runtime.DeepCopyJSONValue(u).(map[string]any)
	if ov, set := o["uri"]; set {
		uv, userSet := out["uri"]
		switch {
		case userSet && reflect.DeepEqual(uv, ov):
		case fixedURI:
			return nil, false
		case !userSet || uriWithin(ov, uv):
			out["uri"] = runtime.DeepCopyJSONValue(ov)
		default:
			return nil, false
		}
	}
	if ov, set := o["method"]; set {
		if uv, userSet := out["method"]; userSet && !reflect.DeepEqual(uv, ov) {
			return nil, false
		}
		out["method"] = runtime.DeepCopyJSONValue(ov)
	}
	for _, key := range []string{"headers", "withoutHeaders", "queryParams"} {
		om, _ := o[key].(map[string]any)
		if len(om) == 0 {
			continue
		}
		um, _ := out[key].(map[string]any)
		if um == nil {
			um = map[string]any{}
		}
		for name, v := range om {
			if uv, set := um[name]; set {
				if !reflect.DeepEqual(uv, v) {
					return nil, false
				}
				continue
			}
			um[name] = runtime.DeepCopyJSONValue(v)
		}
		out[key] = um
	}
	return out, true
}

// uriWithin says whether every URI the StringMatch inner matches is
// matched by outer, a prefix match.
func uriWithin(inner, outer any) bool {
	o, _ := outer.(map[string]any)
	prefix, ok := o["prefix"].(string)
	if !ok {
		return false
	}
	i, _ := inner.(map[string]any)
	for _, key := range []string{"exact", "prefix"} {
		if v, ok := i[key].(string); ok {
			return strings.HasPrefix(v, prefix)
		}
	}
	return false
}
