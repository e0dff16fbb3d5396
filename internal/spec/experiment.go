package spec

import (
	"fmt"
	"slices"
	"time"

	"github.com/pipit-dev/pipit/api/v1alpha1"
)

// Defaults of spec.strategy.experiment; docs/spec.md lists them.
const (
	DefaultExperimentSplit       = 50 * v1alpha1.PercentScale
	DefaultExperimentPromoteIf   = v1alpha1.PromoteIfBetter
	DefaultExperimentMinSample   = 100
	DefaultExperimentMaxDuration = 24 * time.Hour
	DefaultExperimentConfidence  = 0.95
)

// ExperimentPlan is spec.strategy.experiment with its defaults applied.
type ExperimentPlan struct {
	// Split is the treatment's share of the users.
	Split v1alpha1.Percent
	// ByRules is set when the traffic rules send the treatment group to
	// the canary (in Kubernetes), rather than the weight: Split is then
	// the share of users that whatever sets the rules' header or cookie
	// gives the treatment, which the sample-ratio check holds it to.
	ByRules bool
	// Goal names the primary goal; Metric is its conversion metric
	// (conversion-rate:GOAL), which the runtime measures at each check.
	Goal, Metric string
	PromoteIf    v1alpha1.PromoteRule
	// Margin is how far, in percentage points, the treatment may convert
	// below the control under notWorse.
	Margin      float64
	MinSample   int64
	MaxDuration time.Duration
	Confidence  float64
}

// experiment checks spec.strategy.experiment: its numbers, its goal, and
// what it needs to split users for good — a user key, so that a user
// stays in one variant, and the standalone proxy, which counts the goals.
func (v *validator) experiment(s *v1alpha1.RolloutSpec) {
	ex := s.Strategy.Experiment
	if ex == nil {
		return
	}
	const p = "spec.strategy.experiment"
	if ex.Split != nil && (*ex.Split <= 0 || *ex.Split >= v1alpha1.FullWeight) {
		v.add(p+".split", "is the treatment's share of the users: more than 0 and less than 100, not %s", ex.Split)
	}
	switch ex.PromoteIf {
	case "", v1alpha1.PromoteIfBetter:
		if ex.Margin != nil {
			v.add(p+".margin", "is only for promoteIf: notWorse; better promotes a treatment that converts significantly better, with no margin")
		}
	case v1alpha1.PromoteIfNotWorse:
	default:
		v.add(p+".promoteIf", "must be better or notWorse, not %q", clip(string(ex.PromoteIf)))
	}
	if ex.Margin != nil && (*ex.Margin < 0 || *ex.Margin >= v1alpha1.FullWeight) {
		v.add(p+".margin", "is in percentage points of conversion rate, from 0 to below 100, not %s", ex.Margin)
	}
	if ex.MinSample != nil && *ex.MinSample < 1 {
		v.add(p+".minSample", "is the visitors each variant needs before the goal is looked at: at least 1, not %d", *ex.MinSample)
	}
	v.positive(p+".maxDuration", ex.MaxDuration)
	if c := ex.Confidence; c != nil && !(*c > 0 && *c < 1) {
		v.add(p+".confidence", "must be between 0 and 1, such as 0.95, not %v", *c)
	}
	v.experimentGoal(s)
	v.experimentRuntime(s)
}

// experimentGoal checks that the experiment has a goal to decide on.
func (v *validator) experimentGoal(s *v1alpha1.RolloutSpec) {
	const p = "spec.strategy.experiment"
	goal := s.Strategy.Experiment.Goal
	switch {
	case len(v.goalNames) == 0:
		v.add(p, "decides on a conversion goal: list at least one in spec.analysis.goals, such as {name: checkout, path: {exact: /checkout}}")
	case goal != "" && !slices.Contains(v.goalNames, goal):
		v.add(p+".goal", "names no goal of spec.analysis.goals (%q): the goals are %v", clip(goal), v.goalNames)
	}
}

// experimentRuntime refuses an experiment where it cannot split users
// for good. The standalone proxy splits them by a sticky key, a flag by
// its evaluations' targetingKey. In
// Kubernetes, whose routers split requests rather than users, the
// treatment group is the requests the traffic rules send to the canary
// (a header or cookie that something else gives a share of the users,
// as Flagger's A/B testing does), and every other request goes to the
// control.
func (v *validator) experimentRuntime(s *v1alpha1.RolloutSpec) {
	const p = "spec.strategy.experiment"
	switch {
	case s.Flag != nil:
		// The flag's weight splits its users by targetingKey, a key of
		// their own, and its goals are the events they report.
	case RuntimeOf(s) == RuntimeKubernetes:
		for _, k := range kubernetesSettingsOf(s) {
			v.experimentRules(k.field, k.settings)
		}
	case s.Service != nil && (s.Service.Traffic == nil || len(s.Service.Traffic.UserKey) == 0):
		v.add(p, "splits users by a sticky key, so that each stays in one variant: set spec.service.traffic.userKey, such as [{header: X-User-ID}]")
	}
}

// experimentRules checks that a Deployment's router sends the treatment
// group to the canary: a router, and a traffic rule to the canary.
func (v *validator) experimentRules(field string, k *v1alpha1.KubernetesSpec) {
	routed := k != nil && k.Router != nil && (k.Router.GatewayAPI != nil || k.Router.Istio != nil)
	if !routed {
		v.add(field+".router", "an experiment in Kubernetes sends its treatment group by a header or cookie match: set router.gatewayAPI or router.istio")
		return
	}
	toCanary := k.Traffic != nil && slices.ContainsFunc(k.Traffic.Rules, func(r v1alpha1.TrafficRule) bool { return r.To == v1alpha1.DestinationCanary })
	if !toCanary {
		v.add(field+".traffic.rules", "an experiment in Kubernetes sends its treatment group to the canary by a rule: add one with to: canary, such as {to: canary, cookies: {variant: {exact: treatment}}}; the share of users who carry it is the experiment's split")
	}
}

// kubernetesSetting is one Deployment's settings and where they are
// written.
type kubernetesSetting struct {
	field    string
	settings *v1alpha1.KubernetesSpec
}

// kubernetesSettingsOf lists the settings of each Deployment a
// Kubernetes rollout names: spec.kubernetes, or each entry of
// spec.targetRefs.
func kubernetesSettingsOf(s *v1alpha1.RolloutSpec) []kubernetesSetting {
	if len(s.TargetRefs) == 0 {
		return []kubernetesSetting{{"spec.kubernetes", s.Kubernetes}}
	}
	out := make([]kubernetesSetting, len(s.TargetRefs))
	for i := range s.TargetRefs {
		out[i] = kubernetesSetting{fmt.Sprintf("spec.targetRefs[%d]", i), &s.TargetRefs[i].KubernetesSpec}
	}
	return out
}

// resolveExperiment applies the experiment's defaults; goals are
// spec.analysis.goals, of which the first is the default goal.
func resolveExperiment(ex *v1alpha1.ExperimentStrategy, goals []v1alpha1.Goal) *ExperimentPlan {
	p := &ExperimentPlan{
		Split: DefaultExperimentSplit, Goal: ex.Goal, PromoteIf: ex.PromoteIf,
		MinSample:   DefaultExperimentMinSample,
		MaxDuration: durationOr(ex.MaxDuration, DefaultExperimentMaxDuration),
		Confidence:  floatOr(ex.Confidence, DefaultExperimentConfidence),
	}
	if ex.Split != nil {
		p.Split = *ex.Split
	}
	if p.Goal == "" && len(goals) > 0 {
		p.Goal = goals[0].Name
	}
	p.Metric = MetricConversionRate + ":" + p.Goal
	if p.PromoteIf == "" {
		p.PromoteIf = DefaultExperimentPromoteIf
	}
	if ex.Margin != nil {
		p.Margin = ex.Margin.Float()
	}
	if ex.MinSample != nil {
		p.MinSample = *ex.MinSample
	}
	return p
}

// expandExperiment turns an experiment into its steps: the split, set
// once, then the experiment itself, which holds it until a verdict. When
// the traffic rules pick the treatment group (in Kubernetes) the weight
// stays 0: no request outside the group goes to the treatment.
func expandExperiment(ex *ExperimentPlan) []PlanStep {
	w := ex.Split
	if ex.ByRules {
		w = 0
	}
	return []PlanStep{{Kind: StepSetWeight, Weight: w}, {Kind: StepExperiment}}
}

func goalsOf(a *v1alpha1.AnalysisSpec) []v1alpha1.Goal {
	if a == nil {
		return nil
	}
	return a.Goals
}

// withGoalMetric adds the experiment's goal metric to the analysis
// metrics, so that the runtime measures it at each check, unless they
// list it already (as a guardrail too).
func withGoalMetric(metrics []PlanMetric, name string) []PlanMetric {
	for _, m := range metrics {
		if m.Name == name {
			return metrics
		}
	}
	return append(metrics, PlanMetric{MetricSpec: v1alpha1.MetricSpec{Name: name}, ExperimentGoal: true,
		ConsecutiveErrorLimit: DefaultConsecutiveErrors, NoData: v1alpha1.NoDataIgnore, NoDataTimeout: DefaultNoDataTimeout})
}

// withGoalCounts gives each built-in conversion metric whose goal is
// counted in Prometheus that goal's queries.
func withGoalCounts(metrics []PlanMetric, goals []v1alpha1.Goal) {
	for i, m := range metrics {
		name, ok := ConversionGoal(m.Name)
		if !ok || m.Provider != nil || m.TemplateRef != nil || len(goals) == 0 {
			continue
		}
		if name == "" {
			name = goals[0].Name
		}
		for _, g := range goals {
			if g.Name == name && g.Prometheus != nil {
				metrics[i].GoalCounts = g.Prometheus
			}
		}
	}
}
