package spec

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/pipit-dev/pipit/api/v1alpha1"
)

// Runtime names where a rollout runs, as its spec says.
type Runtime string

const (
	// RuntimeStandalone rollouts name a service: pipit's proxy and its
	// upstreams (pipit up).
	RuntimeStandalone Runtime = "standalone"
	// RuntimeKubernetes rollouts name a workload (pipit controller).
	RuntimeKubernetes Runtime = "kubernetes"
)

// RuntimeOf says which runtime s is for.
func RuntimeOf(s *v1alpha1.RolloutSpec) Runtime {
	if s.TargetRef != nil || len(s.TargetRefs) > 0 {
		return RuntimeKubernetes
	}
	return RuntimeStandalone
}

// kubernetes checks a Kubernetes rollout of one Deployment: the target,
// the names it derives, the router, the traffic rules the router can
// express, and metrics that need pipit's own proxy or processes.
func (v *validator) kubernetes(s *v1alpha1.RolloutSpec) {
	v.workload("spec.targetRef", s.TargetRef)
	v.kubernetesMetricLists(s)
	if s.Kubernetes != nil {
		v.kubernetesSettings("spec.kubernetes", s.Kubernetes)
	}
}

// kubernetesMetricLists checks the analysis and post-promotion metrics
// of a Kubernetes rollout.
func (v *validator) kubernetesMetricLists(s *v1alpha1.RolloutSpec) {
	if s.Analysis != nil {
		v.kubernetesMetrics("spec.analysis.metrics", s.Analysis.Metrics)
	}
	if s.PostPromotion != nil {
		v.kubernetesMetrics("spec.postPromotion.metrics", s.PostPromotion.Metrics)
	}
}

// workload checks the reference to a workload at field p.
func (v *validator) workload(p string, t *v1alpha1.TargetRef) {
	switch t.APIVersion {
	case "", "apps/v1":
	default:
		v.add(p+".apiVersion", "must be apps/v1, not %q", clip(t.APIVersion))
	}
	switch t.Kind {
	case "", "Deployment":
	default:
		v.add(p+".kind", "must be Deployment, the only kind pipit rolls out today, not %q", clip(t.Kind))
	}
	if t.Name == "" {
		v.add(p+".name", "is required: the Deployment to roll out")
	} else {
		v.dnsName(p+".name", t.Name)
	}
}

// kubernetesSettings checks the copies, Services, router and traffic
// rules of one workload, written at field p (spec.kubernetes, or an
// entry of spec.targetRefs).
func (v *validator) kubernetesSettings(p string, k *v1alpha1.KubernetesSpec) {
	v.dnsName(p+".stableWorkload", k.StableWorkload)
	v.dnsName(p+".canaryWorkload", k.CanaryWorkload)
	if sv := k.Service; sv != nil {
		v.optionalLabel(p+".service.name", sv.Name)
		v.optionalLabel(p+".service.stableName", sv.StableName)
		v.optionalLabel(p+".service.canaryName", sv.CanaryName)
		for _, port := range []struct {
			field string
			port  int32
		}{{"port", sv.Port}, {"targetPort", sv.TargetPort}} {
			if port.port < 0 || port.port > 65535 {
				v.add(p+".service."+port.field, "must be a port from 1 to 65535, not %d", port.port)
			}
		}
	}
	var gateway, istio bool
	if r := k.Router; r != nil {
		gateway, istio = r.GatewayAPI != nil, r.Istio != nil
		if gateway && istio {
			v.add(p+".router", "set gatewayAPI or istio, not both")
		}
		if g := r.GatewayAPI; g != nil {
			v.dnsName(p+".router.gatewayAPI.httpRoute", g.HTTPRoute)
			switch g.Implementation {
			case "", v1alpha1.EnvoyGateway, v1alpha1.IstioGateway:
			default:
				v.add(p+".router.gatewayAPI.implementation", "must be %s, %s or empty, not %q", v1alpha1.EnvoyGateway, v1alpha1.IstioGateway, g.Implementation)
			}
			for i, ref := range g.ParentRefs {
				f := fmt.Sprintf("%s.router.gatewayAPI.parentRefs[%d]", p, i)
				if ref.Name == "" {
					v.add(f+".name", "is required: the Gateway's name")
				}
				v.dnsName(f+".name", ref.Name)
				v.optionalLabel(f+".namespace", ref.Namespace)
			}
		}
		if is := r.Istio; is != nil {
			v.dnsName(p+".router.istio.virtualService", is.VirtualService)
			v.dnsName(p+".router.istio.destinationRule", is.DestinationRule)
		}
	}
	if tr := k.Traffic; tr != nil {
		v.kubernetesTraffic(p, tr, gateway, istio)
	}
}

// kubernetesMetrics refuses the usage metrics without a provider: they
// are measured on the processes pipit runs in standalone mode. The other
// built-in metrics are read from the Prometheus the controller is given
// (--prometheus-url), from the series of the rollout's router.
func (v *validator) kubernetesMetrics(field string, metrics []v1alpha1.MetricSpec) {
	for i, m := range metrics {
		if isBuiltin(m) && (m.Name == MetricCPUUsage || m.Name == MetricMemoryUsage) {
			v.add(fmt.Sprintf("%s[%d].provider", field, i),
				"is required in Kubernetes for %s: it is measured on the processes pipit runs in standalone mode; use a prometheus provider (such as the kubelet's container_cpu_usage_seconds_total)", m.Name)
		}
	}
}

// kubernetesTraffic checks the traffic section against what a Kubernetes
// router can express: rules and sticky sessions need a router, the
// user-key buckets and list files are the built-in proxy's only, and the
// Gateway API has no negated match.
func (v *validator) kubernetesTraffic(settings string, t *v1alpha1.TrafficSpec, gateway, istio bool) {
	p := settings + ".traffic"
	v.traffic(t, p)
	if len(t.UserKey) > 0 {
		v.add(p+".userKey", "sticky percentages by user key are computed by pipit's own proxy; in Kubernetes use stickySession or rules")
	}
	if t.Salt != "" {
		v.add(p+".salt", "goes with userKey, which Kubernetes routers do not offer")
	}
	if t.Mirror != nil && len(t.Mirror.Methods) > 0 {
		v.add(p+".mirror.methods", "is honoured by pipit's own proxy only; Kubernetes routers copy every method")
	}
	routed := gateway || istio
	if !routed && (len(t.Rules) > 0 || t.StickySession != nil || t.Mirror != nil) {
		v.add(p, "rules, stickySession and mirror need a router: set %s.router.gatewayAPI or .istio", settings)
	}
	for i, r := range t.Rules {
		rp := fmt.Sprintf("%s.rules[%d]", p, i)
		// negatable says whether the router can negate the condition:
		// Istio only headers (and so cookies), the Gateway API nothing.
		each := func(field string, m v1alpha1.StringMatch, negatable bool) {
			if m.InFile != "" {
				v.add(field+".inFile", "the controller reads no local files: list the values with in")
			}
			switch {
			case m.Not && gateway:
				v.add(field+".not", "the Gateway API cannot negate a match")
			case m.Not && !negatable:
				v.add(field+".not", "Istio negates header and cookie conditions only")
			}
		}
		lower := map[string]string{}
		for _, name := range slices.Sorted(maps.Keys(r.Headers)) {
			field := index(rp+".headers", clip(name))
			each(field, r.Headers[name], true)
			if prev, dup := lower[strings.ToLower(name)]; dup {
				v.add(field, "header names ignore case: %q and %q name one header", clip(prev), clip(name))
			}
			lower[strings.ToLower(name)] = name
			if strings.EqualFold(name, "Cookie") && len(r.Cookies) > 0 {
				v.add(field, "a condition on the Cookie header cannot go with cookie conditions: both match that header")
			}
		}
		positive := 0
		for _, name := range slices.Sorted(maps.Keys(r.Cookies)) {
			each(index(rp+".cookies", clip(name)), r.Cookies[name], true)
			if !r.Cookies[name].Not {
				positive++
			}
		}
		if positive > maxKubeCookieConditions {
			v.add(rp+".cookies", "at most %d cookie conditions per rule in Kubernetes (they become one regular expression on the Cookie header), not %d", maxKubeCookieConditions, positive)
		}
		for _, name := range slices.Sorted(maps.Keys(r.QueryParams)) {
			each(index(rp+".queryParams", clip(name)), r.QueryParams[name], false)
		}
		if r.Path != nil {
			each(rp+".path", *r.Path, false)
		}
		if m := r.Method; m != nil {
			each(rp+".method", *m, false)
			if gateway && (m.Prefix != "" || m.Suffix != "" || m.Regex != "") {
				v.add(rp+".method", "the Gateway API matches methods exactly: use exact or in")
			}
		}
	}
}

// maxKubeCookieConditions bounds the cookie conditions of one rule: the
// routers spell every order of the cookies out in one regular expression.
const maxKubeCookieConditions = 3

// dnsName reports a name that is set but is no DNS subdomain, as object
// names must be.
func (v *validator) dnsName(field, name string) {
	if name == "" {
		return
	}
	for _, msg := range validation.IsDNS1123Subdomain(name) {
		v.add(field, "%q is not a valid object name: %s", clip(name), msg)
	}
}

// optionalLabel reports a name that is set but is no DNS label, as
// Service and namespace names must be.
func (v *validator) optionalLabel(field, name string) {
	if name != "" {
		v.dnsLabel(field, name)
	}
}
