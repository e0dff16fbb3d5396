package convert

import (
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pipit-dev/pipit/api/v1alpha1"
)

// flaggerAnalysis converts a Canary's analysis: its timing and weights
// become the strategy, its metrics and webhooks pipit's, and its match,
// mirror and session affinity the Kubernetes traffic section.
func (c *converter) flaggerAnalysis(a field, cc *canaryContext, k *v1alpha1.KubernetesSpec) {
	r := cc.r
	st := &r.Spec.Strategy
	if !a.ok() {
		a.noteHere("a Canary without analysis: the converted rollout waits at one pause for `pipit promote`")
		st.Steps = []v1alpha1.Step{{Pause: &v1alpha1.PauseStep{}}}
		return
	}
	an := &v1alpha1.AnalysisSpec{Interval: a.get("interval").duration(false)}
	if th, ok := a.get("threshold").int(); ok && th > 0 {
		limit := int32(th - 1)
		an.FailureLimit = &limit
	}
	dropAll(a, flaggerAnalysisDropped)
	c.flaggerWeights(a, st, an.Interval)
	c.flaggerTraffic(a, k, cc.rt)
	for _, m := range a.get("metrics").items() {
		if ms, ok := c.flaggerMetric(m, cc); ok {
			an.Metrics = append(an.Metrics, ms)
		}
	}
	for _, w := range a.get("webhooks").items() {
		if h, ok := c.flaggerWebhook(w, an.Interval); ok {
			r.Spec.Webhooks = append(r.Spec.Webhooks, h)
		}
	}
	r.Spec.Analysis = an
}

// flaggerWeights converts the schedule: stepWeight and maxWeight, or
// stepWeights, into pipit's shorthand; iterations alone into checks at no
// weight (blue-green), or, for A/B tests and mirroring, into one analysis
// step while the rules or the mirror send the canary its requests.
func (c *converter) flaggerWeights(a field, st *v1alpha1.Strategy, interval *metav1.Duration) {
	if f, ok := a.get("stepWeight").float(); ok {
		p := v1alpha1.PercentOf(f)
		st.StepWeight = &p
	}
	if f, ok := a.get("maxWeight").float(); ok {
		p := v1alpha1.PercentOf(f)
		st.MaxWeight = &p
	} else if st.StepWeight != nil {
		// pipit's default maxWeight (50) is not Flagger's (100).
		full := v1alpha1.FullWeight
		st.MaxWeight = &full
		a.get("stepWeight").noteHere("maxWeight is not written, and Flagger's default is 100%: written as maxWeight: 100, since pipit's own default is 50%")
	}
	for _, w := range a.get("stepWeights").items() {
		if f, ok := w.float(); ok {
			st.StepWeights = append(st.StepWeights, v1alpha1.PercentOf(f))
		}
	}
	weights := st.StepWeight != nil || st.MaxWeight != nil || len(st.StepWeights) > 0
	it := a.get("iterations")
	n, hasIterations := it.int()
	switch {
	case weights:
		st.Interval = interval
		if hasIterations {
			it.noteHere("Flagger ignores iterations beside step weights, and so does the converted rollout")
		}
	case hasIterations && (a.get("match").ok() || a.get("mirror").ok()):
		st.Steps = []v1alpha1.Step{{Analysis: &v1alpha1.AnalysisStep{Checks: int32(n)}}}
	case hasIterations:
		checks := int32(n)
		st.BlueGreen = &v1alpha1.BlueGreenStrategy{Checks: &checks}
	default:
		a.noteHere("has no stepWeight, stepWeights or iterations: the converted rollout waits at one pause for `pipit promote`")
		st.Steps = []v1alpha1.Step{{Pause: &v1alpha1.PauseStep{}}}
	}
}

// flaggerTraffic converts the A/B test's match into rules that send the
// matching requests to the canary, the mirror, and the session affinity.
func (c *converter) flaggerTraffic(a field, k *v1alpha1.KubernetesSpec, rt router) {
	t := &v1alpha1.TrafficSpec{}
	for i, m := range a.get("match").items() {
		rule := v1alpha1.TrafficRule{Name: fmt.Sprintf("match-%d", i), To: v1alpha1.DestinationCanary}
		rule.Headers = stringMatches(m.get("headers"))
		rule.QueryParams = stringMatches(m.get("queryParams"))
		if u := m.get("uri"); u.ok() {
			rule.Path = stringMatch(u)
		}
		if mt := m.get("method"); mt.ok() {
			rule.Method = stringMatch(mt)
		}
		m.drop("sourceLabels", "pipit's rules match requests, not the labels of the pods sending them")
		t.Rules = append(t.Rules, rule)
	}
	if on, _ := a.get("mirror").bool(); on {
		t.Mirror = &v1alpha1.Mirror{Percent: v1alpha1.FullWeight}
		if w, ok := a.get("mirrorWeight").float(); ok {
			t.Mirror.Percent = v1alpha1.PercentOf(w)
		}
	} else {
		a.drop("mirrorWeight", "goes with mirror: true")
	}
	if sa := a.get("sessionAffinity"); sa.ok() {
		t.StickySession = &v1alpha1.StickySession{CookieName: sa.get("cookieName").str(), TTL: sa.get("maxAge").duration(true)}
		sa.drop("primaryCookieName", "pipit's sticky cookie names the version itself, one cookie for both")
	}
	if len(t.Rules) > 0 || t.Mirror != nil || t.StickySession != nil {
		k.Traffic = t
		if rt == routerReplicas {
			a.noteHere("its match, mirror or session affinity needs a router (Istio or the Gateway API), and the converted rollout has none: write spec.kubernetes.router")
		}
	}
}

// stringMatches reads a mapping of names to Istio string matches.
func stringMatches(f field) map[string]v1alpha1.StringMatch {
	if !f.ok() {
		return nil
	}
	out := map[string]v1alpha1.StringMatch{}
	for _, name := range f.keys() {
		if m := stringMatch(f.get(name)); m != nil {
			out[name] = *m
		}
	}
	return out
}

// stringMatch reads an Istio string match: exact, prefix or regex.
func stringMatch(f field) *v1alpha1.StringMatch {
	return &v1alpha1.StringMatch{Exact: f.get("exact").str(), Prefix: f.get("prefix").str(), Regex: f.get("regex").str(), Suffix: f.get("suffix").str()}
}
