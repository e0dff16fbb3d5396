package spec

import (
	"time"

	"github.com/pipit-dev/pipit/api/v1alpha1"
)

// Defaults of the Kubernetes runtime.
const (
	// DefaultServicePort is the port of the Services pipit manages.
	DefaultServicePort = 80
	// StableSuffix and CanarySuffix name the copies and per-version
	// Services after the target and the apex Service.
	StableSuffix = "-stable"
	CanarySuffix = "-canary"
)

// RouterKind names how the Kubernetes runtime splits traffic.
type RouterKind string

const (
	// RouterReplicas splits by the share of canary replicas behind the
	// apex Service: for workers that receive no routed traffic.
	RouterReplicas RouterKind = "replicas"
	// RouterGatewayAPI sets the weights of an HTTPRoute's backendRefs.
	RouterGatewayAPI RouterKind = "gatewayAPI"
	// RouterIstio sets the weights of a VirtualService's destinations.
	RouterIstio RouterKind = "istio"
)

// KubePlan is a Kubernetes rollout's names and routing with every default
// applied: what the target and the routers act on.
type KubePlan struct {
	// Namespace of the rollout and of everything it names.
	Namespace string
	// Target is the user's Deployment.
	Target string
	// StableWorkload and CanaryWorkload are pipit's copies of it.
	StableWorkload, CanaryWorkload string
	// Service, StableService and CanaryService are the apex Service and
	// the per-version ones.
	Service, StableService, CanaryService string
	// PreviewService is a blue-green rollout's Service of the new version
	// before the switch; empty when there is none.
	PreviewService string
	// BlueGreen says the new version gets no user traffic before the
	// switch: the apex Service then selects the serving copy alone, and
	// the canary runs full size whatever the router.
	BlueGreen bool
	// UndoWindow is how long the previous version stays warm after a
	// promotion (Plan.UndoWindow): its caller sets it, as ResolveKubernetes
	// does not apply the plan's defaults. Zero keeps nothing warm.
	UndoWindow time.Duration
	// Port is the Services' port; TargetPort the container port, zero
	// when the target's first container port (else Port) is meant.
	Port, TargetPort int32
	// Router is how traffic is split.
	Router RouterKind
	// HTTPRoute and ParentRefs: the Gateway API router's route.
	HTTPRoute  string
	ParentRefs []v1alpha1.GatewayParentRef
	// Gateway is the Gateway API implementation serving the route, when
	// the built-in metrics are read from its series; empty otherwise.
	Gateway v1alpha1.GatewayImplementation
	// VirtualService, Hosts, Gateways and DestinationRule: the Istio
	// router's objects; DestinationRule is empty when routing by Service.
	VirtualService  string
	Hosts, Gateways []string
	DestinationRule string
	// Traffic holds the rules, sticky sessions and mirroring; nil when
	// none.
	Traffic *v1alpha1.TrafficSpec
}

// ResolveKubernetes applies the Kubernetes runtime's defaults to a
// validated rollout with a targetRef.
func ResolveKubernetes(r *v1alpha1.Rollout) KubePlan {
	var name string
	if r.Spec.TargetRef != nil {
		name = r.Spec.TargetRef.Name
	}
	return resolveKubernetes(r, name, r.Spec.Kubernetes)
}

// ResolveKubernetesTargets applies the Kubernetes runtime's defaults to
// each Deployment of a validated Kubernetes rollout, in the spec's order:
// the entries of spec.targetRefs, or spec.targetRef alone.
func ResolveKubernetesTargets(r *v1alpha1.Rollout) []KubePlan {
	if len(r.Spec.TargetRefs) == 0 {
		return []KubePlan{ResolveKubernetes(r)}
	}
	plans := make([]KubePlan, len(r.Spec.TargetRefs))
	for i := range r.Spec.TargetRefs {
		ref := &r.Spec.TargetRefs[i]
		plans[i] = resolveKubernetes(r, ref.Name, &ref.KubernetesSpec)
	}
	return plans
}

// resolveKubernetes applies the defaults to the Deployment named target
// of rollout r, run and routed as k says (nil for every default).
func resolveKubernetes(r *v1alpha1.Rollout, target string, k *v1alpha1.KubernetesSpec) KubePlan {
	p := KubePlan{Namespace: r.Namespace, Router: RouterReplicas, Port: DefaultServicePort, Target: target}
	if k == nil {
		k = &v1alpha1.KubernetesSpec{}
	}
	p.StableWorkload = or(k.StableWorkload, p.Target+StableSuffix)
	p.CanaryWorkload = or(k.CanaryWorkload, p.Target+CanarySuffix)
	svc := k.Service
	if svc == nil {
		svc = &v1alpha1.KubernetesService{}
	}
	p.Service = or(svc.Name, p.Target)
	p.StableService = or(svc.StableName, p.Service+StableSuffix)
	p.CanaryService = or(svc.CanaryName, p.Service+CanarySuffix)
	if svc.Port != 0 {
		p.Port = svc.Port
	}
	p.TargetPort = svc.TargetPort
	if bg := r.Spec.Strategy.BlueGreen; bg != nil {
		p.PreviewService, p.BlueGreen = bg.PreviewService, true
	}
	p.Traffic = k.Traffic
	if k.Router == nil {
		return p
	}
	if g := k.Router.GatewayAPI; g != nil {
		p.Router = RouterGatewayAPI
		p.HTTPRoute = or(g.HTTPRoute, p.Service)
		p.ParentRefs = g.ParentRefs
		p.Gateway = g.Implementation
	}
	if is := k.Router.Istio; is != nil {
		p.Router = RouterIstio
		p.VirtualService = or(is.VirtualService, p.Service)
		p.Hosts = is.Hosts
		if len(p.Hosts) == 0 {
			p.Hosts = []string{p.Service}
		}
		p.Gateways = is.Gateways
		p.DestinationRule = is.DestinationRule
	}
	return p
}

func or(s, fallback string) string {
	if s != "" {
		return s
	}
	return fallback
}
