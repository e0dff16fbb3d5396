package engine

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/spec"
)

// presetPlan resolves a rollout with the preset, a check every minute of
// the success rate and no tolerance for a failed check, as a runtime would.
func presetPlan(t *testing.T, p v1alpha1.Preset) spec.Plan {
	t.Helper()
	min99, noTolerance := 99.0, int32(0)
	r := &v1alpha1.Rollout{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1alpha1.APIVersion, Kind: v1alpha1.KindRollout},
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: v1alpha1.RolloutSpec{
			Service:  &v1alpha1.ServiceSpec{Listen: "127.0.0.1:8080", Stable: v1alpha1.Upstream{URL: "http://127.0.0.1:9001"}},
			Strategy: v1alpha1.Strategy{Preset: &p},
			Analysis: &v1alpha1.AnalysisSpec{
				Interval: &metav1.Duration{Duration: time.Minute}, FailureLimit: &noTolerance,
				Metrics: []v1alpha1.MetricSpec{{Name: "request-success-rate", ThresholdRange: &v1alpha1.ThresholdRange{Min: &min99}}},
			},
		},
	}
	return validPlan(t, r)
}

// validPlan is the plan of r, which must pass validation, as a runtime
// resolves it.
func validPlan(t *testing.T, r *v1alpha1.Rollout) spec.Plan {
	t.Helper()
	if errs := spec.Validate(r); len(errs) > 0 {
		t.Fatalf("Validate: %v", errs)
	}
	plan, err := spec.Resolve(&r.Spec)
	if err != nil {
		t.Fatal(err)
	}
	return plan
}

// presetScenarios walk presets on the simulated clock: each stage soaks
// its interval with the analysis checked every minute, a failing check
// rolls back at once, mid-soak, and promotion follows a passing check at
// the last weight.
var presetScenarios = []struct {
	name     string
	preset   v1alpha1.Preset
	failAt   float64 // the success rate fails from this weight on; 0: never
	phase    v1alpha1.Phase
	weights  []float64
	min, max time.Duration // how long the rollout takes
}{
	{
		name: "linear every minute is promoted", preset: v1alpha1.Preset{Name: "CodeDeployDefault.LambdaLinear10PercentEvery1Minute"},
		phase: v1alpha1.PhaseSucceeded, weights: []float64{10, 20, 30, 40, 50, 60, 70, 80, 90, 100},
		min: 9 * time.Minute, max: 9*time.Minute + 2*time.Second, // as CodeDeploy: nine shifts a minute apart
	},
	{
		name: "ECS canary is promoted after its soak", preset: v1alpha1.Preset{Name: "ECSCanary10Percent5Minutes"},
		phase: v1alpha1.PhaseSucceeded, weights: []float64{10, 100}, min: 5 * time.Minute, max: 5*time.Minute + 2*time.Second,
	},
	{
		name: "ECS canary failing at 10% rolls back within its soak", preset: v1alpha1.Preset{Name: "ECSCanary10Percent5Minutes"},
		failAt: 10, phase: v1alpha1.PhaseRolledBack, weights: []float64{10}, max: 5 * time.Minute,
	},
	{
		name: "custom linear failing at its second weight rolls back", failAt: 60,
		preset: v1alpha1.Preset{Linear: &v1alpha1.PresetShift{Percent: v1alpha1.PercentOf(30), Interval: metav1.Duration{Duration: 2 * time.Minute}}},
		phase:  v1alpha1.PhaseRolledBack, weights: []float64{30, 60}, min: 2 * time.Minute, max: 3*time.Minute + 2*time.Second,
	},
	{
		name: "all at once failing rolls back from all traffic", preset: v1alpha1.Preset{Name: "AllAtOnce"},
		failAt: 100, phase: v1alpha1.PhaseRolledBack, weights: []float64{100}, max: 2 * time.Minute,
	},
	{
		name: "all at once is promoted after one check", preset: v1alpha1.Preset{Name: "ECSAllAtOnce"},
		phase: v1alpha1.PhaseSucceeded, weights: []float64{100, 100}, max: 2 * time.Minute,
	},
}

func TestPresetRolloutScenarios(t *testing.T) {
	for _, tc := range presetScenarios {
		t.Run(tc.name, func(t *testing.T) {
			s := newSim(t, presetPlan(t, tc.preset))
			if tc.failAt > 0 {
				s.measure = failingFrom(v1alpha1.PercentOf(tc.failAt))
			}
			s.deploy("v2")
			took := s.runUntil(tc.phase, time.Hour)
			var got []float64
			for _, w := range s.sawWeights() {
				got = append(got, w.Float())
			}
			if !equalFloats(got, tc.weights) {
				t.Errorf("weights %v, want %v\n%s", got, tc.weights, s.history())
			}
			if took < tc.min || took > tc.max {
				t.Errorf("took %s, want %s to %s\n%s", took, tc.min, tc.max, s.history())
			}
			want := map[v1alpha1.Phase]string{v1alpha1.PhaseSucceeded: "v2", v1alpha1.PhaseRolledBack: "v1"}[tc.phase]
			if s.stable != want || s.weight != 0 {
				t.Errorf("stable %s at canary weight %s, want %s at 0", s.stable, s.weight, want)
			}
			if tc.phase == v1alpha1.PhaseRolledBack && (s.st.Rollback == nil || s.st.Rollback.Metric != "request-success-rate") {
				t.Errorf("rollback %+v, want one for request-success-rate", s.st.Rollback)
			}
			t.Logf("%s after %s", tc.phase, took)
		})
	}
}

// The steps a preset expands to are the ones the history names.
func TestPresetStepsShowInHistory(t *testing.T) {
	s := newSim(t, presetPlan(t, v1alpha1.Preset{Canary: &v1alpha1.PresetShift{
		Percent: v1alpha1.PercentOf(2.5), Interval: metav1.Duration{Duration: 3 * time.Minute}}}))
	s.deploy("v2")
	s.runUntil(v1alpha1.PhaseSucceeded, time.Hour)
	h := s.history()
	for _, want := range []string{"Routed 2.5% of traffic to canary v2", "Soaked 3m0s at 2.5%"} {
		if !strings.Contains(h, want) {
			t.Errorf("history lacks %q:\n%s", want, h)
		}
	}
}
