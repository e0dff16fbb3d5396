package convert

import (
	"fmt"
	"strings"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/spec"
)

// flaggerSpecDropped are the fields of a Canary's spec that have no pipit
// equivalent, and why.
var flaggerSpecDropped = map[string]string{
	"autoscalerRef":    "pipit gives each copy the target Deployment's replicas and does not manage an autoscaler; point an HPA at the copies (<target>-stable, <target>-canary) if you need one",
	"ingressRef":       "pipit has no NGINX ingress router; the rollout splits by replicas, or write spec.kubernetes.router.gatewayAPI",
	"routeRef":         "pipit has no APISIX router; the rollout splits by replicas, or write spec.kubernetes.router.gatewayAPI",
	"upstreamRef":      "pipit has no Kong or Gloo router; the rollout splits by replicas, or write spec.kubernetes.router.gatewayAPI",
	"skipAnalysis":     "pipit has no switch to promote without analysis; remove spec.analysis instead",
	"suspend":          "pipit has no suspended state in the spec; use pipit pause",
	"revertOnDeletion": "pipit leaves the target Deployment as it is when the Rollout is deleted",
	"metricsServer":    "each metric names its Prometheus address in pipit; set --prometheus-url",
}

// flaggerServiceDropped are the fields of a Canary's service pipit does not
// set: it changes only the weights of the route, not its other settings.
var flaggerServiceDropped = map[string]string{
	"portName":      "pipit names its Services' port itself",
	"portDiscovery": "pipit exposes one port; other container ports are not added to its Services",
	"appProtocol":   "pipit does not set the port's appProtocol",
	"timeout":       "pipit sets only the weights of the route; set the timeout in your VirtualService or HTTPRoute",
	"retries":       "pipit sets only the weights of the route; set retries in your VirtualService or HTTPRoute",
	"headers":       "pipit sets only the weights of the route; set header changes in your VirtualService or HTTPRoute",
	"corsPolicy":    "pipit sets only the weights of the route; set CORS in your VirtualService or HTTPRoute",
	"trafficPolicy": "pipit manages no DestinationRule policy; set it in your own DestinationRule",
	"match":         "pipit's route takes all requests of the host; narrow it in your VirtualService or HTTPRoute",
	"rewrite":       "pipit sets only the weights of the route; set the rewrite in your VirtualService or HTTPRoute",
	"delegation":    "pipit does not write delegate VirtualServices",
	"apex":          "pipit does not set labels or annotations on its Services",
	"primary":       "pipit does not set labels or annotations on its Services",
	"canary":        "pipit does not set labels or annotations on its Services",
	"backends":      "pipit has no App Mesh router",
	"mirror":        "Flagger ignores it here too; mirroring is spec.analysis.mirror",
}

// flaggerAnalysisDropped are the fields of a Canary's analysis with no
// pipit equivalent.
var flaggerAnalysisDropped = map[string]string{
	"stepWeightPromotion":   "pipit switches all traffic to the new version at the promotion, in one step",
	"alerts":                "AlertProviders are not read; write spec.notifications",
	"canaryReadyThreshold":  "pipit waits for all the canary's pods to be ready",
	"primaryReadyThreshold": "pipit waits for all the stable's pods to be ready",
}

// router is the traffic router a converted rollout uses.
type router int

const (
	routerReplicas router = iota
	routerIstio
	routerGateway
)

// canary converts a Flagger Canary.
func (c *converter) canary(d *doc) []any {
	r := newRollout(d)
	s := d.top().get("spec")
	t := s.get("targetRef")
	if kind := t.get("kind").str(); kind != "Deployment" {
		t.get("kind").noteHere(fmt.Sprintf("is %q: pipit rolls out Deployments only, so the Canary is not converted", kind))
		return nil
	}
	t.get("apiVersion")
	r.Spec.TargetRef = &v1alpha1.TargetRef{Name: t.get("name").str()}
	r.Spec.ProgressDeadline = s.get("progressDeadlineSeconds").duration(true)
	dropAll(s, flaggerSpecDropped)
	k := &v1alpha1.KubernetesSpec{}
	rt := c.flaggerRouter(s, k)
	c.flaggerService(s.get("service"), k, rt)
	cc := canaryRefs(r, s, k)
	cc.rt = rt
	a := s.get("analysis")
	if !a.ok() {
		a = s.get("canaryAnalysis")
	}
	c.flaggerAnalysis(a, cc, k)
	if k.Router != nil || k.Service != nil || k.Traffic != nil {
		r.Spec.Kubernetes = k
	}
	return []any{r}
}

// flaggerRouter picks the router from spec.provider, or, when it is not
// written, from the service fields that only one router reads.
func (c *converter) flaggerRouter(s field, k *v1alpha1.KubernetesSpec) router {
	p := s.get("provider")
	svc := s.get("service")
	name := p.str()
	switch {
	case name == "istio", name == "" && len(svc.get("gateways").items()) > 0:
		k.Router = &v1alpha1.KubernetesRouter{Istio: &v1alpha1.IstioRouter{}}
		return routerIstio
	case strings.HasPrefix(name, "gatewayapi"), name == "" && len(svc.get("gatewayRefs").items()) > 0:
		k.Router = &v1alpha1.KubernetesRouter{GatewayAPI: &v1alpha1.GatewayAPIRouter{}}
		return routerGateway
	case name == "kubernetes":
		return routerReplicas
	case name == "":
		p.noteHere("not written, so Flagger used the mesh provider it was installed with; the converted rollout has no router and splits traffic by the canary's share of replicas: write spec.kubernetes.router for Istio or the Gateway API")
	default:
		p.noteHere(fmt.Sprintf("%q: pipit routes with Istio or the Gateway API only; the converted rollout has no router and splits traffic by the canary's share of replicas", name))
	}
	return routerReplicas
}

// flaggerService converts spec.service: the port, and the hosts and
// gateways of the route pipit creates.
func (c *converter) flaggerService(svc field, k *v1alpha1.KubernetesSpec, rt router) {
	if !svc.ok() {
		return
	}
	ks := &v1alpha1.KubernetesService{Name: svc.get("name").str()}
	if port, ok := svc.get("port").int(); ok {
		ks.Port = int32(port)
	}
	if tp := svc.get("targetPort"); tp.ok() {
		if port, err := parsePort(tp.str()); err == nil {
			ks.TargetPort = port
		} else {
			tp.noteHere(fmt.Sprintf("%q is a port name; pipit takes a number, and without one the workload's first container port", tp.str()))
		}
	}
	k.Service = ks
	dropAll(svc, flaggerServiceDropped)
	hosts, gateways, refs := svc.get("hosts"), svc.get("gateways"), svc.get("gatewayRefs")
	unused := []field{hosts, gateways, refs}
	switch rt {
	case routerIstio:
		hosts.decode(&k.Router.Istio.Hosts)
		gateways.decode(&k.Router.Istio.Gateways)
		unused = []field{refs}
	case routerGateway:
		for _, g := range refs.items() {
			k.Router.GatewayAPI.ParentRefs = append(k.Router.GatewayAPI.ParentRefs, v1alpha1.GatewayParentRef{
				Name: g.get("name").str(), Namespace: g.get("namespace").str(), SectionName: g.get("sectionName").str(),
			})
		}
		svc.drop("hosts", "an HTTPRoute pipit creates has no hostnames; create the HTTPRoute with them and name it in spec.kubernetes.router.gatewayAPI.httpRoute")
		unused = []field{gateways}
	}
	for _, f := range unused {
		if f.ok() {
			f.whole()
			f.noteHere("belongs to a router the converted rollout does not use")
		}
	}
}

func parsePort(s string) (int32, error) {
	var p int32
	_, err := fmt.Sscanf(s, "%d", &p)
	if err != nil || fmt.Sprint(p) != s {
		return 0, fmt.Errorf("not a number")
	}
	return p, nil
}

// canaryRefs returns what a Canary's queries may name: Flagger's
// {{ target }} becomes pipit's copy of each version, <target>-canary and
// <target>-stable, so that each query measures the version it is run for.
func canaryRefs(r *v1alpha1.Rollout, s field, k *v1alpha1.KubernetesSpec) *canaryContext {
	target := r.Spec.TargetRef.Name
	service := target
	if k.Service != nil && k.Service.Name != "" {
		service = k.Service.Name
	}
	refs := map[string]string{
		"namespace": "{{ .Namespace }}",
		"target":    target + "-{{ .Role }}",
		"name":      r.Name,
		"service":   service,
	}
	for key, ref := range map[string]string{"ingress": "ingressRef", "route": "routeRef"} {
		if n := spec.Field(spec.Field(s.n, ref), "name"); n != nil {
			refs[key] = n.Value
		}
	}
	return &canaryContext{r: r, window: "1m", refs: refs}
}
