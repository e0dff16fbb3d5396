package spec

import (
	"strings"
	"testing"
	"time"

	"github.com/pipit-dev/pipit/api/v1alpha1"
)

// withExperiment is a valid experiment: withGoals' rollout with its steps
// replaced by an experiment that leaves every field to its default.
func withExperiment() *v1alpha1.Rollout {
	r := withGoals()
	r.Spec.Strategy = v1alpha1.Strategy{Experiment: &v1alpha1.ExperimentStrategy{}}
	return r
}

// experimentRefusals break withExperiment one way each.
var experimentRefusals = []refusal{
	{"mixed with steps", func(r *v1alpha1.Rollout) { r.Spec.Strategy.Steps = []v1alpha1.Step{{SetWeight: pct(5)}} },
		"spec.strategy.experiment", "cannot be mixed with steps, a preset, blueGreen or the shorthand"},
	{"mixed with blue-green", func(r *v1alpha1.Rollout) { r.Spec.Strategy.BlueGreen = &v1alpha1.BlueGreenStrategy{} },
		"spec.strategy.experiment", "cannot be mixed"},
	{"split of all users", func(r *v1alpha1.Rollout) { r.Spec.Strategy.Experiment.Split = pct(100) },
		"spec.strategy.experiment.split", "more than 0 and less than 100, not 100%"},
	{"unknown rule", func(r *v1alpha1.Rollout) { r.Spec.Strategy.Experiment.PromoteIf = "faster" },
		"spec.strategy.experiment.promoteIf", `must be better or notWorse, not "faster"`},
	{"margin with better", func(r *v1alpha1.Rollout) { r.Spec.Strategy.Experiment.Margin = pct(1) },
		"spec.strategy.experiment.margin", "is only for promoteIf: notWorse"},
	{"no sample", func(r *v1alpha1.Rollout) { r.Spec.Strategy.Experiment.MinSample = ptr(int64(0)) },
		"spec.strategy.experiment.minSample", "at least 1, not 0"},
	{"negative duration", func(r *v1alpha1.Rollout) { r.Spec.Strategy.Experiment.MaxDuration = dur(-time.Hour) },
		"spec.strategy.experiment.maxDuration", "must be positive"},
	{"confidence of 95", func(r *v1alpha1.Rollout) { r.Spec.Strategy.Experiment.Confidence = ptr(95.0) },
		"spec.strategy.experiment.confidence", "between 0 and 1, such as 0.95, not 95"},
	{"goal not listed", func(r *v1alpha1.Rollout) { r.Spec.Strategy.Experiment.Goal = "signin" },
		"spec.strategy.experiment.goal", `names no goal of spec.analysis.goals ("signin")`},
	{"no goals", func(r *v1alpha1.Rollout) {
		r.Spec.Analysis.Goals = nil
		r.Spec.Analysis.Metrics = r.Spec.Analysis.Metrics[:1]
	},
		"spec.strategy.experiment", "decides on a conversion goal: list at least one in spec.analysis.goals"},
}

func TestValidateExperiment(t *testing.T) {
	if errs := Validate(withExperiment()); len(errs) > 0 {
		t.Fatalf("a valid experiment is refused:\n%v", errs)
	}
	checkRefusals(t, withExperiment, experimentRefusals)
}

// An experiment without a user key is refused twice over: the goals and
// the split both need one to keep a user in one variant.
func TestExperimentNeedsAUserKey(t *testing.T) {
	r := withExperiment()
	r.Spec.Service.Traffic = nil
	if !strings.Contains(Validate(r).Error(), "spec.strategy.experiment: splits users by a sticky key") {
		t.Errorf("an experiment without a user key: %v", Validate(r))
	}
}

// kubeExperiment is a valid experiment in Kubernetes: the Gateway API
// sends the requests with the cookie variant=treatment to the canary, and
// the goal is counted in Prometheus.
func kubeExperiment() *v1alpha1.Rollout {
	r := withExperiment()
	r.Spec.Service = nil
	r.Spec.TargetRef = &v1alpha1.TargetRef{Kind: "Deployment", Name: "web"}
	r.Spec.Kubernetes = &v1alpha1.KubernetesSpec{
		Router: &v1alpha1.KubernetesRouter{GatewayAPI: &v1alpha1.GatewayAPIRouter{HTTPRoute: "web"}},
		Traffic: &v1alpha1.TrafficSpec{Rules: []v1alpha1.TrafficRule{
			{To: v1alpha1.DestinationCanary, Cookies: map[string]v1alpha1.StringMatch{"variant": {Exact: "treatment"}}},
		}},
	}
	r.Spec.Analysis.Goals = []v1alpha1.Goal{{Name: "checkout", Prometheus: &v1alpha1.PrometheusGoal{
		Visitors:    `sum(increase(shop_visitors_total{service="web-{{ .Role }}"}[{{ .Elapsed }}]))`,
		Conversions: `sum(increase(shop_checkouts_total{service="web-{{ .Role }}"}[{{ .Elapsed }}]))`,
	}}}
	r.Spec.Analysis.Metrics = []v1alpha1.MetricSpec{{Name: "request-success-rate", ThresholdRange: &v1alpha1.ThresholdRange{Min: ptr(99.0)}}}
	return r
}

// kubeExperimentRefusals break kubeExperiment one way each.
var kubeExperimentRefusals = []refusal{
	{"no router", func(r *v1alpha1.Rollout) { r.Spec.Kubernetes = nil },
		"spec.kubernetes.router", "sends its treatment group by a header or cookie match: set router.gatewayAPI or router.istio"},
	{"no rule to the canary", func(r *v1alpha1.Rollout) { r.Spec.Kubernetes.Traffic.Rules[0].To = v1alpha1.DestinationStable },
		"spec.kubernetes.traffic.rules", "add one with to: canary"},
	{"goal of requests", func(r *v1alpha1.Rollout) {
		r.Spec.Analysis.Goals[0] = v1alpha1.Goal{Name: "checkout", Path: &v1alpha1.StringMatch{Exact: "/checkout"}}
	},
		"spec.analysis.goals[0]", "does not carry Kubernetes traffic: count the goal's users in Prometheus"},
	{"goal counted twice", func(r *v1alpha1.Rollout) { r.Spec.Analysis.Goals[0].Path = &v1alpha1.StringMatch{Exact: "/checkout"} },
		"spec.analysis.goals[0]", "is counted by prometheus or by request conditions"},
	{"no visitors query", func(r *v1alpha1.Rollout) { r.Spec.Analysis.Goals[0].Prometheus.Visitors = " " },
		"spec.analysis.goals[0].prometheus.visitors", "is required: a PromQL query counting the version's users"},
	{"broken template", func(r *v1alpha1.Rollout) {
		r.Spec.Analysis.Goals[0].Prometheus.Conversions = "sum(x{role=\"{{ .Role \"})"
	},
		"spec.analysis.goals[0].prometheus.conversions", "is not a valid template"},
	{"bad address", func(r *v1alpha1.Rollout) { r.Spec.Analysis.Goals[0].Prometheus.Address = "prometheus:9090" },
		"spec.analysis.goals[0].prometheus.address", "http"},
}

func TestValidateExperimentInKubernetes(t *testing.T) {
	if errs := Validate(kubeExperiment()); len(errs) > 0 {
		t.Fatalf("a valid experiment in Kubernetes is refused:\n%v", errs)
	}
	checkRefusals(t, kubeExperiment, kubeExperimentRefusals)
}

// Every Deployment of targetRefs sends its treatment group by a rule.
func TestExperimentOverTargetRefsNeedsRulesForEach(t *testing.T) {
	r := kubeExperiment()
	r.Spec.TargetRef, r.Spec.Kubernetes = nil, nil
	r.Spec.TargetRefs = []v1alpha1.DeploymentRef{
		{TargetRef: v1alpha1.TargetRef{Name: "web"}, KubernetesSpec: *kubeExperiment().Spec.Kubernetes},
		{TargetRef: v1alpha1.TargetRef{Name: "api"}},
	}
	errs := Validate(r)
	if len(errs) != 1 || errs[0].Field != "spec.targetRefs[1].router" {
		t.Errorf("an experiment over two Deployments, the second without a router: %v", errs)
	}
}

// In Kubernetes the rules pick the treatment group: the weight stays 0,
// the split is what the sample-ratio check holds the group to, and the
// goal's queries measure its metric.
func TestResolveExperimentInKubernetes(t *testing.T) {
	r := kubeExperiment()
	r.Spec.Strategy.Experiment.Split = pct(10)
	p, err := Resolve(&r.Spec)
	if err != nil {
		t.Fatal(err)
	}
	if !p.Experiment.ByRules || p.Experiment.Split != 10*v1alpha1.PercentScale {
		t.Errorf("plan.Experiment = %+v, want the group picked by rules, at a planned 10%%", *p.Experiment)
	}
	if p.Steps[0].Kind != StepSetWeight || p.Steps[0].Weight != 0 {
		t.Errorf("first step %+v, want setWeight 0", p.Steps[0])
	}
	last := p.Analysis.Metrics[len(p.Analysis.Metrics)-1]
	if last.Name != "conversion-rate:checkout" || last.GoalCounts != r.Spec.Analysis.Goals[0].Prometheus {
		t.Errorf("the goal's metric %+v is not measured by the goal's queries", last)
	}
}

// A standalone rollout may count a goal in Prometheus too, at an address
// of its own: pipit up has no default Prometheus.
func TestStandalonePrometheusGoalNeedsAnAddress(t *testing.T) {
	r := withGoals()
	r.Spec.Analysis.Goals[1] = v1alpha1.Goal{Name: "signup", Prometheus: kubeExperiment().Spec.Analysis.Goals[0].Prometheus}
	errs := Validate(r)
	if len(errs) != 1 || errs[0].Field != "spec.analysis.goals[1].prometheus.address" || !strings.Contains(errs[0].Reason, "required in standalone mode") {
		t.Fatalf("a standalone Prometheus goal without an address: %v", errs)
	}
	r.Spec.Analysis.Goals[1].Prometheus.Address = "http://127.0.0.1:9090"
	if errs := Validate(r); len(errs) > 0 {
		t.Fatal(errs)
	}
	p, err := Resolve(&r.Spec)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range p.Analysis.Metrics {
		if counted := m.GoalCounts != nil; counted != (m.Name == "conversion-rate:signup") {
			t.Errorf("metric %s counted in Prometheus: %v", m.Name, counted)
		}
	}
}

func TestResolveExperimentDefaults(t *testing.T) {
	r := withExperiment()
	p, err := Resolve(&r.Spec)
	if err != nil {
		t.Fatal(err)
	}
	want := ExperimentPlan{Split: 50 * v1alpha1.PercentScale, Goal: "checkout", Metric: "conversion-rate:checkout",
		PromoteIf: v1alpha1.PromoteIfBetter, MinSample: 100, MaxDuration: 24 * time.Hour, Confidence: 0.95}
	if p.Experiment == nil || *p.Experiment != want {
		t.Fatalf("plan.Experiment = %+v, want %+v", p.Experiment, want)
	}
	if len(p.Steps) != 2 || p.Steps[0].Kind != StepSetWeight || p.Steps[0].Weight != want.Split || p.Steps[1].Kind != StepExperiment {
		t.Errorf("steps = %+v, want setWeight 50%% then the experiment", p.Steps)
	}
	last := p.Analysis.Metrics[len(p.Analysis.Metrics)-1]
	if last.Name != want.Metric || !last.ExperimentGoal {
		t.Errorf("the goal's metric is not measured: last metric %+v", last)
	}
}

func TestResolveExperimentNotWorse(t *testing.T) {
	r := withExperiment()
	r.Spec.Strategy.Experiment = &v1alpha1.ExperimentStrategy{Split: pct(20), Goal: "signup", PromoteIf: v1alpha1.PromoteIfNotWorse,
		Margin: pct(0.5), MinSample: ptr(int64(1000)), MaxDuration: dur(time.Hour), Confidence: ptr(0.9)}
	if errs := Validate(r); len(errs) > 0 {
		t.Fatal(errs)
	}
	p, err := Resolve(&r.Spec)
	if err != nil {
		t.Fatal(err)
	}
	want := ExperimentPlan{Split: 20 * v1alpha1.PercentScale, Goal: "signup", Metric: "conversion-rate:signup",
		PromoteIf: v1alpha1.PromoteIfNotWorse, Margin: 0.5, MinSample: 1000, MaxDuration: time.Hour, Confidence: 0.9}
	if *p.Experiment != want {
		t.Fatalf("plan.Experiment = %+v, want %+v", *p.Experiment, want)
	}
	if n := len(p.Analysis.Metrics); n != 3 {
		t.Errorf("conversion-rate:signup is listed already and measured once; got %d metrics", n)
	}
}
