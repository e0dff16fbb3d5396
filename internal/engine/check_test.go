package engine

import (
	"errors"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/analysis"
	"github.com/pipit-dev/pipit/internal/rollout"
	"github.com/pipit-dev/pipit/internal/spec"
)

// metricsPlan is 10% with one analysis check, then promotion; checks every
// minute on the given metrics.
func metricsPlan(t *testing.T, decision v1alpha1.DecisionMode, metrics ...v1alpha1.MetricSpec) spec.Plan {
	t.Helper()
	p, err := spec.Resolve(&v1alpha1.RolloutSpec{
		Decision: decision,
		Strategy: v1alpha1.Strategy{Steps: []v1alpha1.Step{{SetWeight: pct(10)}, {Analysis: &v1alpha1.AnalysisStep{Checks: 3}}}},
		Analysis: &v1alpha1.AnalysisSpec{Interval: &metav1.Duration{Duration: time.Minute}, Metrics: metrics},
	})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func int32p(v int32) *int32 { return &v }

// constant measures every metric with the same value each check.
func constant(values map[string]rollout.Measurement) func(*sim) []rollout.Measurement {
	return func(*sim) []rollout.Measurement {
		var out []rollout.Measurement
		for name, m := range values {
			m.Metric = name
			out = append(out, m)
		}
		return out
	}
}

func TestNoDataPolicies(t *testing.T) {
	noData := map[string]rollout.Measurement{"rate": {}, "count": {Canary: val(5)}}
	cases := []struct {
		name   string
		policy v1alpha1.NoDataPolicy
		phase  v1alpha1.Phase
		limit  time.Duration
		reason string
	}{
		{"hold waits, then fails at the timeout", v1alpha1.NoDataHold, v1alpha1.PhaseRolledBack, 10 * time.Minute, "rate: no data for 5m0s (noDataTimeout 5m0s)"},
		{"fail counts as a failure", v1alpha1.NoDataFail, v1alpha1.PhaseRolledBack, 3 * time.Minute, "no data for the canary in this window (failed 1 times"},
		{"ignore lets the other metric decide", v1alpha1.NoDataIgnore, v1alpha1.PhaseSucceeded, 10 * time.Minute, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newSim(t, metricsPlan(t, v1alpha1.DecisionAutomatic,
				v1alpha1.MetricSpec{Name: "rate", NoData: tc.policy},
				v1alpha1.MetricSpec{Name: "count", ThresholdRange: &v1alpha1.ThresholdRange{Min: val(1)}}))
			s.measure = constant(noData)
			s.deploy("v2")
			took := s.runUntil(tc.phase, tc.limit)
			if tc.reason != "" && !strings.Contains(s.st.Rollback.Reason, tc.reason) {
				t.Errorf("reason %q, want %q", s.st.Rollback.Reason, tc.reason)
			}
			if tc.policy == v1alpha1.NoDataHold && took < 6*time.Minute {
				t.Errorf("hold gave up after %s", took)
			}
		})
	}
}

func TestMissingDataNeverPromotes(t *testing.T) {
	s := newSim(t, metricsPlan(t, v1alpha1.DecisionAutomatic, v1alpha1.MetricSpec{Name: "rate", NoData: v1alpha1.NoDataIgnore}))
	s.measure = constant(map[string]rollout.Measurement{"rate": {}})
	s.deploy("v2")
	s.advance(2 * time.Hour)
	if s.st.Phase != v1alpha1.PhaseProgressing || s.st.Analysis.PassedChecks != 0 {
		t.Fatalf("with no data at all: %s after %d passed checks", s.st.Phase, s.st.Analysis.PassedChecks)
	}
}

func TestDryRunMetricsNeverDecide(t *testing.T) {
	s := newSim(t, metricsPlan(t, v1alpha1.DecisionAutomatic,
		v1alpha1.MetricSpec{Name: "experimental", DryRun: true, ThresholdRange: &v1alpha1.ThresholdRange{Max: val(1)}},
		v1alpha1.MetricSpec{Name: "rate", ThresholdRange: &v1alpha1.ThresholdRange{Max: val(1)}}))
	s.measure = constant(map[string]rollout.Measurement{"experimental": {Canary: val(50)}, "rate": {Canary: val(0.5)}})
	s.deploy("v2")
	s.runUntil(v1alpha1.PhaseSucceeded, 10*time.Minute)
	if !strings.Contains(s.history(), "experimental 50 > max 1 [dry run]") {
		t.Errorf("the dry-run failure is not reported:\n%s", s.history())
	}
}

// A threshold metric listed before a compared one decides as before: the
// compared metrics decide through the score only, whatever their place.
func TestThresholdMetricListedBeforeACompareOneStillDecides(t *testing.T) {
	s := newSim(t, metricsPlan(t, v1alpha1.DecisionAutomatic,
		v1alpha1.MetricSpec{Name: "rate", ThresholdRange: &v1alpha1.ThresholdRange{Max: val(1)}},
		v1alpha1.MetricSpec{Name: "latency", Compare: &v1alpha1.CompareSpec{Direction: "increase"}}))
	same := make([]float64, 60)
	for i := range same {
		same[i] = 100 + float64(i%7)
	}
	s.measure = constant(map[string]rollout.Measurement{
		"rate":    {Canary: val(50)},
		"latency": {CanarySamples: same, StableSamples: same},
	})
	s.deploy("v2")
	s.runUntil(v1alpha1.PhaseRolledBack, 10*time.Minute)
	if s.st.Rollback.Metric != "rate" || strings.Contains(s.history(), "rate 50 > max 1 [dry run]") {
		t.Errorf("rollback %+v, want the failing threshold metric, counted and not a dry run:\n%s", s.st.Rollback, s.history())
	}
	if strings.Contains(s.history(), "[dry run]") {
		t.Errorf("no metric here is a dry run:\n%s", s.history())
	}
}

// Builtin samples grow from check to check, so the comparison's error is
// spent over the checks: evidence that fails the first check (at 0.99) no
// longer fails the second (at 0.9967). A provider's samples are a new
// window each time, and the same evidence fails every check.
func TestComparedBuiltinMetricSpendsItsConfidenceOverTheChecks(t *testing.T) {
	var stable, canary []float64
	for i := range 60 {
		stable = append(stable, 100+float64((i*37)%11))
		canary = append(canary, 102+float64((i*53)%11))
	}
	for _, tc := range []struct {
		name     string
		provider *v1alpha1.MetricProvider
		want     v1alpha1.Phase
		failed   int32
	}{
		{"builtin", nil, v1alpha1.PhaseSucceeded, 1},
		{"prometheus", &v1alpha1.MetricProvider{Prometheus: &v1alpha1.PrometheusProvider{Address: "http://127.0.0.1:9090", Query: "q"}},
			v1alpha1.PhaseRolledBack, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := spec.Resolve(&v1alpha1.RolloutSpec{
				Strategy: v1alpha1.Strategy{Steps: []v1alpha1.Step{{SetWeight: pct(10)}, {Analysis: &v1alpha1.AnalysisStep{Checks: 3}}}},
				Analysis: &v1alpha1.AnalysisSpec{Interval: &metav1.Duration{Duration: time.Minute}, FailureLimit: int32p(1),
					Metrics: []v1alpha1.MetricSpec{{Name: "latency-p50", Provider: tc.provider, Compare: &v1alpha1.CompareSpec{Direction: "increase"}}}},
			})
			if err != nil {
				t.Fatal(err)
			}
			s := newSim(t, p)
			s.measure = constant(map[string]rollout.Measurement{"latency-p50": {CanarySamples: canary, StableSamples: stable}})
			s.deploy("v2")
			s.runUntil(tc.want, 20*time.Minute)
			if got := s.st.Analysis.FailedChecks; got != tc.failed {
				t.Errorf("%d failed checks, want %d:\n%s", got, tc.failed, s.history())
			}
		})
	}
}

func TestConsecutiveErrorLimit(t *testing.T) {
	flaky := 0
	s := newSim(t, metricsPlan(t, v1alpha1.DecisionAutomatic,
		v1alpha1.MetricSpec{Name: "rate", ThresholdRange: &v1alpha1.ThresholdRange{Max: val(1)}}))
	// One error in every two measurements: never four in a row, so the
	// rollout goes on (slowly) and is promoted.
	s.measure = func(*sim) []rollout.Measurement {
		flaky++
		if flaky%2 == 0 {
			return []rollout.Measurement{{Metric: "rate", Err: errors.New("query timeout")}}
		}
		return []rollout.Measurement{{Metric: "rate", Canary: val(0.1)}}
	}
	s.deploy("v2")
	s.runUntil(v1alpha1.PhaseSucceeded, 20*time.Minute)

	// Always failing to measure: the fifth error in a row fails the analysis.
	s = newSim(t, metricsPlan(t, v1alpha1.DecisionAutomatic,
		v1alpha1.MetricSpec{Name: "rate", ThresholdRange: &v1alpha1.ThresholdRange{Max: val(1)}}))
	s.measure = constant(map[string]rollout.Measurement{"rate": {Err: errors.New("connection refused")}})
	s.deploy("v2")
	took := s.runUntil(v1alpha1.PhaseRolledBack, 20*time.Minute)
	if !strings.Contains(s.st.Rollback.Reason, "5 errors in a row, consecutiveErrorLimit 4") || took < 5*time.Minute {
		t.Errorf("after %s: %q", took, s.st.Rollback.Reason)
	}
}

func TestInconclusiveLimitWaitsForAPerson(t *testing.T) {
	s := newSim(t, metricsPlan(t, v1alpha1.DecisionAutomatic, v1alpha1.MetricSpec{Name: "rate",
		SuccessCondition: "result < 1", FailureCondition: "result > 2", InconclusiveLimit: int32p(2)}))
	s.measure = constant(map[string]rollout.Measurement{"rate": {Canary: val(1.5)}})
	s.deploy("v2")
	s.runUntil(v1alpha1.PhaseAwaitingDecision, 10*time.Minute)
	if s.st.Gate.Kind != v1alpha1.GateAnomaly || !strings.Contains(s.st.Gate.Reason, "inconclusiveLimit 2") {
		t.Errorf("gate %+v", s.st.Gate)
	}
}

func TestAlarmRollsBackBetweenChecks(t *testing.T) {
	s := newSim(t, seedPlan(v1alpha1.DecisionAutomatic, 5))
	s.deploy("v2")
	s.advance(20 * time.Second) // first check is a minute away
	in := Input{Now: s.now, Observed: rollout.Observed{CanaryVersion: "v2", CanaryHealth: rollout.HealthUp, StableVersion: "v1", Weight: s.weight},
		Alarms: []rollout.Alarm{{Metric: analysis.ErrorRateAlarm, Reason: "canary error rate 6% is higher"}}}
	r := Step(s.plan, s.st, in)
	if r.Status.Phase != v1alpha1.PhaseRollingBack || r.Status.Rollback.Metric != analysis.ErrorRateAlarm {
		t.Fatalf("phase %s rollback %+v", r.Status.Phase, r.Status.Rollback)
	}
	// In hybrid mode the same alarm waits for a person instead.
	h := newSim(t, seedPlan(v1alpha1.DecisionHybrid, 5))
	h.deploy("v2")
	h.advance(20 * time.Second)
	in.Now = h.now
	if r := Step(h.plan, h.st, in); r.Status.Phase != v1alpha1.PhaseAwaitingDecision {
		t.Fatalf("hybrid: phase %s", r.Status.Phase)
	}
}

func TestCanaryScoreDecidesComparedMetrics(t *testing.T) {
	lat := func(base float64) []float64 {
		out := make([]float64, 50)
		for i := range out {
			out[i] = base + float64(i%7)
		}
		return out
	}
	compared := v1alpha1.MetricSpec{Name: "latency", Compare: &v1alpha1.CompareSpec{Direction: "increase"}}
	s := newSim(t, metricsPlan(t, v1alpha1.DecisionAutomatic, compared))
	s.measure = constant(map[string]rollout.Measurement{"latency": {CanarySamples: lat(100), StableSamples: lat(100)}})
	s.deploy("v2")
	s.runUntil(v1alpha1.PhaseSucceeded, 10*time.Minute)

	s = newSim(t, metricsPlan(t, v1alpha1.DecisionAutomatic, compared))
	s.measure = constant(map[string]rollout.Measurement{"latency": {CanarySamples: lat(180), StableSamples: lat(100)}})
	s.deploy("v2")
	s.runUntil(v1alpha1.PhaseRolledBack, 10*time.Minute)
	if s.st.Rollback.Metric != analysis.ScoreMetric || !strings.Contains(s.st.Rollback.Reason, "canary-score 0") {
		t.Errorf("rollback %+v", s.st.Rollback)
	}
}

func TestNoPromotionWithoutAPassingCheckAtTheLastWeight(t *testing.T) {
	p := seedPlan(v1alpha1.DecisionAutomatic, 1)
	p.Analysis.Metrics[0].NoDataTimeout = 20 * time.Minute
	s := newSim(t, p)
	// Data only while the canary is at 5% or 25%: at 50% every check has
	// no data, so the pauses end but the rollout must not be promoted.
	s.measure = func(s *sim) []rollout.Measurement {
		if s.weight >= v1alpha1.PercentOf(50) {
			return []rollout.Measurement{{Metric: "request-success-rate"}}
		}
		return successRate(99.9)
	}
	s.deploy("v2")
	s.advance(35 * time.Minute)
	if s.st.Phase != v1alpha1.PhaseProgressing || !strings.Contains(s.st.Message, "waiting for a passing check at 50%") {
		t.Fatalf("phase %s (%s), want to hold before promotion", s.st.Phase, s.st.Message)
	}
	// The no-data hold runs out: the rollout fails instead of promoting.
	s.runUntil(v1alpha1.PhaseRolledBack, 30*time.Minute)
	if !strings.Contains(s.st.Rollback.Reason, "no data for") {
		t.Errorf("reason %q", s.st.Rollback.Reason)
	}
}
