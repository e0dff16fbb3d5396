package router

import (
	"fmt"
	"slices"
	"strings"

	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/pipit-dev/pipit/api/v1alpha1"
)

// Envoy Gateway puts the backendRefs of one route rule into one Envoy
// cluster, whose series cannot tell the versions apart, unless a
// backendRef of the rule carries a filter: it then builds a cluster per
// backendRef, named httproute/NAMESPACE/ROUTE/rule/I/backend/J. So for
// Envoy Gateway every backendRef pipit writes to the stable or canary
// Service sets a header naming the role, and the router tells the
// built-in metrics which clusters carry each role.

// RoleHeader is the request header pipit's filter sets on the requests
// sent to a version through Envoy Gateway: stable or canary.
const RoleHeader = "X-Pipit-Role"

// EnvoyClusters are the names of the Envoy clusters that Envoy Gateway
// builds for the backendRefs to each version's Service.
type EnvoyClusters struct {
	Stable, Canary []string
}

// EnvoyClusters are the clusters of the route as last written: none
// until it was, or when the route is not served by Envoy Gateway.
func (g *GatewayAPI) EnvoyClusters() EnvoyClusters {
	if c := g.clusters.Load(); c != nil {
		return *c
	}
	return EnvoyClusters{}
}

// noteClusters keeps the Envoy clusters of the route as written: rule I
// and backendRef J of the route make cluster .../rule/I/backend/J.
func (g *GatewayAPI) noteClusters(route *gatewayv1.HTTPRoute) {
	if g.plan.Gateway != v1alpha1.EnvoyGateway {
		return
	}
	var c EnvoyClusters
	for i, r := range route.Spec.Rules {
		for j, b := range r.BackendRefs {
			name := fmt.Sprintf("httproute/%s/%s/rule/%d/backend/%d", route.Namespace, route.Name, i, j)
			switch {
			case g.isOurs(b.BackendObjectReference, g.plan.StableService):
				c.Stable = append(c.Stable, name)
			case g.isOurs(b.BackendObjectReference, g.plan.CanaryService):
				c.Canary = append(c.Canary, name)
			}
		}
	}
	g.clusters.Store(&c)
}

// roleFilters is the filters of a backendRef to service: the user's, and
// for Envoy Gateway pipit's role header when service is a version's.
func (g *GatewayAPI) roleFilters(service string, filters []gatewayv1.HTTPRouteFilter) []gatewayv1.HTTPRouteFilter {
	filters = withoutRole(filters)
	role := map[string]string{g.plan.StableService: "stable", g.plan.CanaryService: "canary"}[service]
	if g.plan.Gateway != v1alpha1.EnvoyGateway || role == "" {
		return filters
	}
	header := gatewayv1.HTTPHeader{Name: RoleHeader, Value: role}
	// The API allows one RequestHeaderModifier per backendRef: the
	// header joins the user's when there is one.
	i := slices.IndexFunc(filters, isHeaderModifier)
	if i < 0 {
		return append(filters, gatewayv1.HTTPRouteFilter{
			Type:                  gatewayv1.HTTPRouteFilterRequestHeaderModifier,
			RequestHeaderModifier: &gatewayv1.HTTPHeaderFilter{Set: []gatewayv1.HTTPHeader{header}},
		})
	}
	filters[i].RequestHeaderModifier.Set = append(filters[i].RequestHeaderModifier.Set, header)
	return filters
}

// withoutRole is a deep copy of filters without pipit's role header, and
// without the filter that held it alone.
func withoutRole(filters []gatewayv1.HTTPRouteFilter) []gatewayv1.HTTPRouteFilter {
	var out []gatewayv1.HTTPRouteFilter
	for _, f := range filters {
		f = *f.DeepCopy()
		if !isHeaderModifier(f) {
			out = append(out, f)
			continue
		}
		m := f.RequestHeaderModifier
		n := len(m.Set)
		m.Set = slices.DeleteFunc(m.Set, func(h gatewayv1.HTTPHeader) bool { return strings.EqualFold(string(h.Name), RoleHeader) })
		if len(m.Set) == n || len(m.Set)+len(m.Add)+len(m.Remove) > 0 {
			out = append(out, f)
		}
	}
	return out
}

func isHeaderModifier(f gatewayv1.HTTPRouteFilter) bool {
	return f.Type == gatewayv1.HTTPRouteFilterRequestHeaderModifier && f.RequestHeaderModifier != nil
}
