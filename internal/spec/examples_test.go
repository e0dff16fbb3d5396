package spec

import (
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/pipit-dev/pipit/api/v1alpha1"
)

// examplePlans parses and resolves every example, and returns their plans
// by file name.
func examplePlans(t *testing.T) map[string]Plan {
	t.Helper()
	files, err := filepath.Glob("../../examples/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 5 {
		t.Fatalf("found %d examples, want at least 5", len(files))
	}
	plans := map[string]Plan{}
	for _, f := range files {
		rollouts, err := load(f)
		if err != nil {
			t.Errorf("load: %v", err)
			continue
		}
		for _, r := range rollouts {
			p, err := Resolve(&r.Spec)
			if err != nil {
				t.Errorf("%s: Resolve %s: %v", f, r.Name, err)
			}
			plans[filepath.Base(f)] = p
			switch filepath.Base(f) {
			case "kubernetes-several.yaml":
				checkSeveralExample(t, r)
			case "fleet.yaml":
				checkFleetExample(t, r)
			case "process.yaml":
				proc, notes := r.Spec.Service.Stable.Process, r.Spec.Notifications
				if proc == nil || proc.Readiness == nil || proc.Liveness == nil || len(notes) != 1 || notes[0].URLEnv == "" {
					t.Errorf("process.yaml: want a process with readiness and liveness probes and a notifier whose URL comes from the environment")
				}
			}
		}
	}
	return plans
}

// TestExamples parses and resolves every example, so that the examples
// shipped with pipit always load, and checks the plans of the canary
// ones.
func TestExamples(t *testing.T) {
	plans := examplePlans(t)
	// The seed plan: 5% → 25% → 50% → promoted, each stage soaking ten
	// minutes and then passing one check.
	var want []PlanStep
	for _, w := range []v1alpha1.Percent{5000, 25000, 50000} {
		want = append(want,
			PlanStep{Kind: StepSetWeight, Weight: w},
			PlanStep{Kind: StepPause, Duration: 10 * time.Minute},
			PlanStep{Kind: StepAnalysis, Checks: 1})
	}
	canary := plans["canary.yaml"]
	if !reflect.DeepEqual(canary.Steps, want) || canary.Decision != v1alpha1.DecisionAutomatic || len(canary.Analysis.Metrics) != 2 {
		t.Errorf("canary.yaml plan = %+v", canary)
	}
	if p := plans["flagger-shorthand.yaml"]; len(p.Steps) != 20 || p.Steps[18].Weight != 50000 || p.Analysis.Interval != time.Minute {
		t.Errorf("flagger-shorthand.yaml plan = %+v", p)
	}
	if p := plans["fleet.yaml"]; len(p.Steps) != 4 || p.Steps[0].Weight != 10000 || p.Steps[2].Weight != 50000 || len(p.Analysis.Metrics) != 2 {
		t.Errorf("fleet.yaml plan = %+v", p)
	}
	if p := plans["fine-weights.yaml"]; len(p.Steps) != 16 || p.Steps[0].Weight != 100 || p.Steps[2].Weight != 500 {
		t.Errorf("fine-weights.yaml plan = %+v", p)
	}
	if plans["manual.yaml"].Decision != v1alpha1.DecisionManual || plans["hybrid.yaml"].Decision != v1alpha1.DecisionHybrid {
		t.Error("manual.yaml or hybrid.yaml has the wrong decision mode")
	}
	if p := plans["process.yaml"]; len(p.Hooks[v1alpha1.HookRollout]) != 1 || p.Hooks[v1alpha1.HookRollout][0].LoadTest == nil ||
		!slices.ContainsFunc(p.Steps, func(s PlanStep) bool { return s.Kind == StepApproval }) ||
		!slices.ContainsFunc(p.Analysis.Metrics, func(m PlanMetric) bool { return m.Name == MetricMemoryUsage }) {
		t.Errorf("process.yaml plan = %+v", p)
	}
	if p := plans["preset.yaml"]; !reflect.DeepEqual(p.Steps, stagesOf([]float64{10}, 5*time.Minute)) {
		t.Errorf("preset.yaml plan = %+v", p.Steps)
	}
}

// TestStrategyExamples checks the plans of the examples of the other
// strategies and features: the watch after a promotion, blue-green, an
// experiment in Kubernetes, metric templates, an approval at the end.
func TestStrategyExamples(t *testing.T) {
	plans := examplePlans(t)
	if pp := plans["post-promotion.yaml"].PostPromotion; pp == nil || pp.Duration != 10*time.Minute || len(pp.Metrics) != 2 ||
		pp.Metrics[1].Compare == nil || plans["post-promotion.yaml"].UndoWindow != 30*time.Minute {
		t.Errorf("post-promotion.yaml watch = %+v", pp)
	}
	if p := plans["blue-green.yaml"]; !p.BlueGreen || p.Decision != v1alpha1.DecisionManual || p.AutoPromotionAfter != 10*time.Minute ||
		!reflect.DeepEqual(p.Steps, []PlanStep{{Kind: StepAnalysis, Checks: 2}}) || p.PostPromotion == nil {
		t.Errorf("blue-green.yaml plan = %+v", p)
	}
	if p := plans["kubernetes-blue-green.yaml"]; !p.BlueGreen || !reflect.DeepEqual(p.Steps, []PlanStep{{Kind: StepAnalysis, Checks: 3}}) {
		t.Errorf("kubernetes-blue-green.yaml plan = %+v", p)
	}
	if m := plans["metric-templates.yaml"].Analysis.Metrics; len(m) != 2 || m[0].Provider == nil || m[0].Args["route"] != "/checkout" ||
		*m[0].ThresholdRange.Max != 1 || *m[1].ThresholdRange.Max != 0.1 || m[1].Unit != "%" {
		t.Errorf("metric-templates.yaml metrics = %+v, want both from the template, the second with its own threshold", m)
	}
	if p := plans["kubernetes-experiment.yaml"]; p.Experiment == nil || !p.Experiment.ByRules || p.Steps[0].Weight != 0 ||
		p.Analysis.Metrics[len(p.Analysis.Metrics)-1].GoalCounts == nil {
		t.Errorf("kubernetes-experiment.yaml plan = %+v, want an experiment by rules at weight 0, its goal counted in Prometheus", p)
	}
	hybrid := plans["hybrid.yaml"].Steps
	if last := hybrid[len(hybrid)-1]; last.Kind != StepApproval || last.Duration != 8*time.Hour || last.OnTimeout != v1alpha1.ApprovalRollback {
		t.Errorf("hybrid.yaml does not end with an approval that rolls back after 8h: %+v", last)
	}
}

// checkSeveralExample checks examples/kubernetes-several.yaml: two
// Deployments of the Kubernetes runtime, each with its own router.
func checkSeveralExample(t *testing.T, r *v1alpha1.Rollout) {
	t.Helper()
	plans := ResolveKubernetesTargets(r)
	if RuntimeOf(&r.Spec) != RuntimeKubernetes || len(plans) != 2 {
		t.Fatalf("kubernetes-several.yaml: runtime %s, %d Deployments; want kubernetes, 2", RuntimeOf(&r.Spec), len(plans))
	}
	front, back := plans[0], plans[1]
	if front.Target != "storefront" || front.Router != RouterGatewayAPI || front.Traffic == nil || front.TargetPort != 8080 {
		t.Errorf("kubernetes-several.yaml storefront: %+v", front)
	}
	if back.Target != "cart-api" || back.Router != RouterReplicas || back.Port != 8080 || back.CanaryService != "cart-api-canary" {
		t.Errorf("kubernetes-several.yaml cart-api: %+v", back)
	}
}

// checkFleetExample checks that fleet.yaml's versions are fleets: three
// machines for the stable, two for the canary, each its own.
func checkFleetExample(t *testing.T, r *v1alpha1.Rollout) {
	t.Helper()
	svc := r.Spec.Service
	if svc == nil || len(svc.Stable.URLs) != 3 || svc.Stable.URL != "" || svc.Canary == nil || len(svc.Canary.URLs) != 2 ||
		slices.ContainsFunc(svc.Canary.URLs, func(u string) bool { return slices.Contains(svc.Stable.URLs, u) }) {
		t.Errorf("fleet.yaml: want a stable of three machines and a canary of two others, got %+v", svc)
	}
}
