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

func TestExperimentRefusedInKubernetes(t *testing.T) {
	r := withExperiment()
	r.Spec.Service = nil
	r.Spec.TargetRef = &v1alpha1.TargetRef{Kind: "Deployment", Name: "web"}
	r.Spec.Analysis.Goals, r.Spec.Analysis.Metrics = nil, r.Spec.Analysis.Metrics[:1]
	if !strings.Contains(Validate(r).Error(), "spec.strategy.experiment: runs in the standalone runtime only") {
		t.Errorf("an experiment in Kubernetes: %v", Validate(r))
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
