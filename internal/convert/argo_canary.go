package convert

import (
	"fmt"

	"github.com/pipit-dev/pipit/api/v1alpha1"
)

// argoCanaryDropped are the fields of an Argo canary strategy with no
// pipit equivalent.
var argoCanaryDropped = map[string]string{
	"canaryMetadata":              "pipit labels its copies itself",
	"stableMetadata":              "pipit labels its copies itself",
	"maxSurge":                    "pipit's copies are Deployments of their own, which keep their default update strategy",
	"maxUnavailable":              "pipit's copies are Deployments of their own, which keep their default update strategy",
	"scaleDownDelayRevisionLimit": "pipit keeps one previous version, for spec.undoWindow",
	"abortScaleDownDelaySeconds":  "pipit scales the canary down at once after a rollback",
	"dynamicStableScale":          "pipit keeps the stable at full size until the promotion",
	"antiAffinity":                "pipit does not add affinity rules between its copies",
	"pingPong":                    "pipit's copies keep their names (<target>-stable, <target>-canary)",
	"minPodsPerReplicaSet":        "pipit gives the canary its share of replicas, at least one",
	"replicaProgressThreshold":    "pipit waits for all the canary's pods to be ready",
}

// argoStepsDropped are the Argo steps pipit has no step for.
var argoStepsDropped = map[string]string{
	"setCanaryScale": "pipit gives the canary its weight's share of the replicas; left out",
	"plugin":         "pipit runs no step plugins; left out",
}

// argoCanary converts an Argo canary strategy: its Services, traffic
// routing, steps and background analysis.
func (c *converter) argoCanary(cf field, r *v1alpha1.Rollout) {
	k := &v1alpha1.KubernetesSpec{}
	canary, stable := cf.get("canaryService").str(), cf.get("stableService").str()
	if canary != "" || stable != "" {
		k.Service = &v1alpha1.KubernetesService{CanaryName: canary, StableName: stable}
	}
	dropAll(cf, argoCanaryDropped)
	r.Spec.UndoWindow = cf.get("scaleDownDelaySeconds").duration(true)
	argoTrafficRouting(cf.get("trafficRouting"), k)
	if bg := cf.get("analysis"); bg.ok() {
		metrics, _, interval := c.argoAnalysis(bg, r)
		c.addMetrics(r, metrics, interval)
		bg.drop("startingStep", "pipit's analysis runs from the first step on")
	}
	for _, st := range cf.get("steps").items() {
		if step, ok := c.argoStep(st, r, k); ok {
			r.Spec.Strategy.Steps = append(r.Spec.Strategy.Steps, step)
		}
	}
	if len(r.Spec.Strategy.Steps) == 0 {
		cf.get("steps").noteHere("no step pipit can run: as Argo does without steps, the converted rollout sends all traffic to the new version at once")
		full := v1alpha1.FullWeight
		r.Spec.Strategy.Steps = []v1alpha1.Step{{SetWeight: &full}}
	}
	if k.Service != nil || k.Router != nil || k.Traffic != nil {
		r.Spec.Kubernetes = k
	}
}

// argoStep converts one canary step; false when it has no pipit step.
func (c *converter) argoStep(st field, r *v1alpha1.Rollout, k *v1alpha1.KubernetesSpec) (v1alpha1.Step, bool) {
	switch {
	case st.get("setWeight").ok():
		f, ok := st.get("setWeight").float()
		p := v1alpha1.PercentOf(f)
		return v1alpha1.Step{SetWeight: &p}, ok
	case st.get("pause").ok():
		return v1alpha1.Step{Pause: &v1alpha1.PauseStep{Duration: st.get("pause").get("duration").duration(true)}}, true
	case st.get("analysis").ok():
		a := st.get("analysis")
		metrics, checks, interval := c.argoAnalysis(a, r)
		c.addMetrics(r, metrics, interval)
		a.noteHere(fmt.Sprintf("the templates' metrics join spec.analysis, which pipit checks at every interval of the rollout, not only at this step; the step waits for that many passing checks (checks: %d, the templates' largest count)", checks))
		return v1alpha1.Step{Analysis: &v1alpha1.AnalysisStep{Checks: checks}}, true
	case st.get("experiment").ok():
		st.drop("experiment", "pipit runs no experiments (extra ReplicaSets beside the canary); the step becomes a pause for `pipit promote`, so that a person can run the comparison")
		return v1alpha1.Step{Pause: &v1alpha1.PauseStep{}}, true
	case st.get("setHeaderRoute").ok():
		argoHeaderRoute(st.get("setHeaderRoute"), k)
	case st.get("setMirrorRoute").ok():
		argoMirrorRoute(st.get("setMirrorRoute"), k)
	default:
		for _, key := range st.keys() {
			why, known := argoStepsDropped[key]
			if !known {
				why = "pipit has no such step; left out"
			}
			st.drop(key, why)
		}
	}
	return v1alpha1.Step{}, false
}

// argoHeaderRoute turns a setHeaderRoute step into a rule sending the
// matching requests to the canary for the whole rollout.
func argoHeaderRoute(f field, k *v1alpha1.KubernetesSpec) {
	rule := v1alpha1.TrafficRule{Name: f.get("name").str(), To: v1alpha1.DestinationCanary, Headers: map[string]v1alpha1.StringMatch{}}
	for _, m := range f.get("match").items() {
		if sm := stringMatch(m.get("headerValue")); sm != nil {
			rule.Headers[m.get("headerName").str()] = *sm
		}
	}
	if len(rule.Headers) == 0 {
		f.noteHere("removes the header route, which pipit's rules, set for the whole rollout, need not do")
		return
	}
	f.noteHere("becomes a rule of spec.kubernetes.traffic, which sends the matching requests to the canary from the start of the rollout, not only from this step")
	traffic(k).Rules = append(traffic(k).Rules, rule)
}

// argoMirrorRoute turns a setMirrorRoute step into the rollout's mirror.
func argoMirrorRoute(f field, k *v1alpha1.KubernetesSpec) {
	f.get("name")
	pct, ok := f.get("percentage").float()
	if !ok {
		pct = 100
	}
	f.drop("match", "Kubernetes routers mirror every request of the route; pipit's mirror has no match")
	f.noteHere("becomes spec.kubernetes.traffic.mirror, which copies requests to the canary for the whole rollout, not only from this step")
	traffic(k).Mirror = &v1alpha1.Mirror{Percent: v1alpha1.PercentOf(pct)}
}

func traffic(k *v1alpha1.KubernetesSpec) *v1alpha1.TrafficSpec {
	if k.Traffic == nil {
		k.Traffic = &v1alpha1.TrafficSpec{}
	}
	return k.Traffic
}

// argoTrafficRouting converts the Istio and Gateway API routing; other
// routers are named, and the rollout splits by replicas.
func argoTrafficRouting(tr field, k *v1alpha1.KubernetesSpec) {
	for _, key := range tr.keys() {
		f := tr.get(key)
		switch key {
		case "istio":
			k.Router = &v1alpha1.KubernetesRouter{Istio: argoIstio(f)}
		case "plugins":
			if gw := f.get("argoproj-labs/gatewayAPI"); gw.ok() {
				k.Router = &v1alpha1.KubernetesRouter{GatewayAPI: &v1alpha1.GatewayAPIRouter{HTTPRoute: gw.get("httpRoute").str()}}
				gw.drop("namespace", "pipit's HTTPRoute is in the Rollout's namespace")
			}
			for _, p := range f.keys() {
				if p != "argoproj-labs/gatewayAPI" {
					f.drop(p, "pipit routes with Istio or the Gateway API only")
				}
			}
		case "managedRoutes":
			tr.drop(key, "pipit adds the routes it needs (rules, mirror) to the VirtualService or HTTPRoute itself")
		default:
			tr.drop(key, "pipit routes with Istio or the Gateway API only; without a router the canary's share of replicas follows its weight")
		}
	}
}

// argoIstio converts Istio routing: the VirtualService and the
// DestinationRule.
func argoIstio(f field) *v1alpha1.IstioRouter {
	is := &v1alpha1.IstioRouter{}
	vs := f.get("virtualService")
	if list := f.get("virtualServices").items(); len(list) > 0 {
		vs = list[0]
		for _, extra := range list[1:] {
			extra.whole()
			extra.noteHere("pipit sets the weights of one VirtualService; left out")
		}
	}
	is.VirtualService = vs.get("name").str()
	vs.drop("routes", "pipit changes the destinations pointing at the rollout's Services in every HTTP route of the VirtualService")
	vs.drop("tlsRoutes", "pipit sets the weights of HTTP routes only")
	vs.drop("tcpRoutes", "pipit sets the weights of HTTP routes only")
	if dr := f.get("destinationRule"); dr.ok() {
		is.DestinationRule = dr.get("name").str()
		dr.drop("canarySubsetName", "pipit names the subsets canary and stable")
		dr.drop("stableSubsetName", "pipit names the subsets canary and stable")
	}
	return is
}
