package router

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"k8s.io/utils/ptr"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/pipit-dev/pipit/api/v1alpha1"
)

// The rules pipit adds to an HTTPRoute for the traffic rules: each rule
// translated into Gateway API matches, narrowing the matches of the user's
// rules it applies to.

// pipitRules are the rules for the traffic rules: one per traffic rule
// and managed rule, narrowing that rule's matches, to one Service.
func (g *GatewayAPI) pipitRules(user []gatewayv1.HTTPRouteRule, managed []int) ([]gatewayv1.HTTPRouteRule, error) {
	if g.plan.Traffic == nil {
		return nil, nil
	}
	names := ruleNames(g.plan.Traffic.Rules)
	used := map[string]bool{}
	var out []gatewayv1.HTTPRouteRule
	for i, tr := range g.plan.Traffic.Rules {
		ours, err := gatewayMatches(tr)
		if err != nil {
			return nil, ruleError(i, tr, err)
		}
		service, at := g.plan.CanaryService, 1
		if tr.To == v1alpha1.DestinationStable {
			service, at = g.plan.StableService, 0
		}
		for _, m := range managed {
			r := user[m]
			matches := combineMatches(r, ours)
			if len(matches) == 0 {
				g.log.Warn("a traffic rule cannot narrow a route rule's matches (paths not inside one another, different methods or conditions on one header, or a rewrite of the matched prefix): no pipit rule for that route rule", "trafficRule", i, "routeRule", m)
				continue
			}
			out = append(out, gatewayv1.HTTPRouteRule{
				Name:        ptr.To(gatewayv1.SectionName(uniqueName(names[i], used))),
				Matches:     matches,
				Filters:     g.withoutMirror(r.Filters),
				BackendRefs: []gatewayv1.HTTPBackendRef{g.backendRef(service, 1, r.BackendRefs[at].Filters)},
				Timeouts:    r.Timeouts.DeepCopy(),
				Retry:       r.Retry.DeepCopy(),
			})
		}
	}
	return out, nil
}

// gatewayMatches translates a traffic rule into Gateway API matches: one,
// or one per method of a list of methods.
func gatewayMatches(r v1alpha1.TrafficRule) ([]gatewayv1.HTTPRouteMatch, error) {
	must, not, err := headerConditions(r)
	if err != nil {
		return nil, err
	}
	cookies, notCookies := cookieConditions(r)
	if len(not)+len(notCookies) > 0 {
		return nil, errors.New("the Gateway API cannot negate a match (not)")
	}
	var m gatewayv1.HTTPRouteMatch
	for _, name := range sortedKeys(must) {
		v, err := valueCondition(must[name], false)
		if err != nil {
			return nil, fmt.Errorf("header %s: %w", name, err)
		}
		m.Headers = append(m.Headers, headerMatch(name, v))
	}
	if len(cookies) > 0 {
		re, err := cookiesAll(cookies)
		if err != nil {
			return nil, err
		}
		m.Headers = append(m.Headers, headerMatch(cookieHeader, valueMatch{matchRegex, re}))
		slices.SortFunc(m.Headers, func(a, b gatewayv1.HTTPHeaderMatch) int { return strings.Compare(string(a.Name), string(b.Name)) })
	}
	for _, name := range sortedKeys(r.QueryParams) {
		q := r.QueryParams[name]
		if q.Not {
			return nil, errors.New("the Gateway API cannot negate a match (not)")
		}
		v, err := valueCondition(q, false)
		if err != nil {
			return nil, fmt.Errorf("query parameter %s: %w", name, err)
		}
		t := gatewayv1.QueryParamMatchExact
		if v.kind == matchRegex {
			t = gatewayv1.QueryParamMatchRegularExpression
		}
		m.QueryParams = append(m.QueryParams, gatewayv1.HTTPQueryParamMatch{Type: ptr.To(t), Name: gatewayv1.HTTPHeaderName(name), Value: v.value})
	}
	if p := r.Path; p != nil {
		if p.Not {
			return nil, errors.New("the Gateway API cannot negate a match (not)")
		}
		v, err := valueCondition(*p, true)
		if err != nil {
			return nil, fmt.Errorf("path: %w", err)
		}
		t := map[matchKind]gatewayv1.PathMatchType{
			matchExact: gatewayv1.PathMatchExact, matchPrefix: gatewayv1.PathMatchPathPrefix, matchRegex: gatewayv1.PathMatchRegularExpression,
		}[v.kind]
		m.Path = &gatewayv1.HTTPPathMatch{Type: ptr.To(t), Value: ptr.To(v.value)}
	}
	return withMethods(m, r.Method)
}

// withMethods is the match for each method a condition allows: the
// Gateway API matches one method exactly.
func withMethods(m gatewayv1.HTTPRouteMatch, c *v1alpha1.StringMatch) ([]gatewayv1.HTTPRouteMatch, error) {
	switch {
	case c == nil:
		return []gatewayv1.HTTPRouteMatch{m}, nil
	case c.Not, c.Prefix != "", c.Suffix != "", c.Regex != "", c.InFile != "":
		return nil, errors.New("method: the Gateway API matches methods exactly: use exact or in")
	case c.Exact != "":
		m.Method = ptr.To(gatewayv1.HTTPMethod(c.Exact))
		return []gatewayv1.HTTPRouteMatch{m}, nil
	}
	var out []gatewayv1.HTTPRouteMatch
	for _, method := range c.In {
		one := *m.DeepCopy()
		one.Method = ptr.To(gatewayv1.HTTPMethod(method))
		out = append(out, one)
	}
	return out, nil
}

func headerMatch(name string, v valueMatch) gatewayv1.HTTPHeaderMatch {
	t := gatewayv1.HeaderMatchExact
	if v.kind == matchRegex {
		t = gatewayv1.HeaderMatchRegularExpression
	}
	return gatewayv1.HTTPHeaderMatch{Type: ptr.To(t), Name: gatewayv1.HTTPHeaderName(name), Value: v.value}
}

// combineMatches is every user match narrowed by every one of pipit's:
// requests that both select. A rule without matches matches everything.
// Pairs that cannot both hold in one Gateway API match (paths neither
// inside the other, different methods, two conditions on one header) are
// left out, and so is narrowing the path of a rule that replaces the
// matched path prefix, which would change what it replaces.
func combineMatches(r gatewayv1.HTTPRouteRule, ours []gatewayv1.HTTPRouteMatch) []gatewayv1.HTTPRouteMatch {
	user := r.Matches
	if len(user) == 0 {
		user = []gatewayv1.HTTPRouteMatch{{}}
	}
	fixed := replacesPrefix(r)
	var out []gatewayv1.HTTPRouteMatch
	for _, u := range user {
		for _, o := range ours {
			if m, ok := combineMatch(u, o, fixed); ok {
				out = append(out, m)
			}
		}
	}
	return out
}

func combineMatch(u, o gatewayv1.HTTPRouteMatch, fixedPath bool) (gatewayv1.HTTPRouteMatch, bool) {
	out := *u.DeepCopy()
	path, ok := narrowPath(out.Path, o.Path, fixedPath)
	if !ok {
		return out, false
	}
	out.Path = path
	if o.Method != nil {
		if out.Method != nil && *out.Method != *o.Method {
			return out, false
		}
		out.Method = ptr.To(*o.Method)
	}
	for _, h := range o.Headers {
		i := slices.IndexFunc(out.Headers, func(x gatewayv1.HTTPHeaderMatch) bool { return strings.EqualFold(string(x.Name), string(h.Name)) })
		if i < 0 {
			out.Headers = append(out.Headers, h)
		} else if x := out.Headers[i]; ptr.Deref(x.Type, gatewayv1.HeaderMatchExact) != *h.Type || x.Value != h.Value {
			return out, false
		}
	}
	for _, q := range o.QueryParams {
		i := slices.IndexFunc(out.QueryParams, func(x gatewayv1.HTTPQueryParamMatch) bool { return x.Name == q.Name })
		if i < 0 {
			out.QueryParams = append(out.QueryParams, q)
		} else if x := out.QueryParams[i]; ptr.Deref(x.Type, gatewayv1.QueryParamMatchExact) != *q.Type || x.Value != q.Value {
			return out, false
		}
	}
	return out, true
}

// narrowPath is the path match both user and ours select: the narrower
// one, when one is inside the other.
func narrowPath(user, ours *gatewayv1.HTTPPathMatch, fixed bool) (*gatewayv1.HTTPPathMatch, bool) {
	switch {
	case ours == nil && user == nil:
		return rootPath(), true
	case ours == nil:
		return user, true
	case user != nil && samePath(*user, *ours):
		return user, true
	case fixed:
		return nil, false
	case isRootPath(user) || pathWithin(*ours, *user):
		return ours.DeepCopy(), true
	}
	return nil, false
}

// pathWithin says whether every path p matches is under prefix, a
// PathPrefix match (whole path segments).
func pathWithin(p, prefix gatewayv1.HTTPPathMatch) bool {
	if ptr.Deref(prefix.Type, gatewayv1.PathMatchPathPrefix) != gatewayv1.PathMatchPathPrefix ||
		ptr.Deref(p.Type, gatewayv1.PathMatchPathPrefix) == gatewayv1.PathMatchRegularExpression {
		return false
	}
	base := strings.TrimSuffix(ptr.Deref(prefix.Value, "/"), "/")
	v := ptr.Deref(p.Value, "/")
	return v == base || strings.HasPrefix(v, base+"/")
}

// replacesPrefix says whether a rule rewrites or redirects by replacing
// the path prefix its match selected.
func replacesPrefix(r gatewayv1.HTTPRouteRule) bool {
	filters := slices.Clone(r.Filters)
	for _, b := range r.BackendRefs {
		filters = append(filters, b.Filters...)
	}
	return slices.ContainsFunc(filters, func(f gatewayv1.HTTPRouteFilter) bool {
		var p *gatewayv1.HTTPPathModifier
		switch {
		case f.URLRewrite != nil:
			p = f.URLRewrite.Path
		case f.RequestRedirect != nil:
			p = f.RequestRedirect.Path
		}
		return p != nil && p.Type == gatewayv1.PrefixMatchHTTPPathModifier
	})
}

// rootPath is the match of every path, the API's default.
func rootPath() *gatewayv1.HTTPPathMatch {
	return &gatewayv1.HTTPPathMatch{Type: ptr.To(gatewayv1.PathMatchPathPrefix), Value: ptr.To("/")}
}

func isRootPath(p *gatewayv1.HTTPPathMatch) bool {
	return p == nil || samePath(*p, *rootPath())
}

func samePath(a, b gatewayv1.HTTPPathMatch) bool {
	return ptr.Deref(a.Type, gatewayv1.PathMatchPathPrefix) == ptr.Deref(b.Type, gatewayv1.PathMatchPathPrefix) &&
		ptr.Deref(a.Value, "/") == ptr.Deref(b.Value, "/")
}
