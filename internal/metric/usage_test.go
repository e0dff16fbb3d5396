package metric

import (
	"context"
	"strings"
	"testing"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/spec"
	"github.com/pipit-dev/pipit/internal/traffic"
)

// fakeUsage answers fixed usage per version; a version it does not know
// does not run.
type fakeUsage map[string][2]float64

func (f fakeUsage) Usage(version string) (cpu, mem float64, ok bool) {
	u, ok := f[version]
	return u[0], u[1], ok
}

func usagePlan(names ...string) spec.AnalysisPlan {
	var p spec.AnalysisPlan
	for _, n := range names {
		p.Metrics = append(p.Metrics, spec.PlanMetric{MetricSpec: v1alpha1.MetricSpec{Name: n}})
	}
	return p
}

func TestSetMeasuresUsageOfCanaryAndStable(t *testing.T) {
	src := fakeUsage{"v1": {40, 25}, "v2": {130, 70}}
	s, err := NewSet(SetConfig{Rollout: "web", Plan: usagePlan(MemoryUsage, CPUUsage), Usage: src})
	if err != nil {
		t.Fatal(err)
	}
	st := v1alpha1.RolloutStatus{Stable: &v1alpha1.VersionRef{Version: "v1"}, Canary: &v1alpha1.VersionRef{Version: "v2"}}
	got := s.Measure(context.Background(), st)
	if len(got) != 2 || got[0].Metric != MemoryUsage || got[1].Metric != CPUUsage {
		t.Fatalf("measured %+v", got)
	}
	if *got[0].Canary != 70 || *got[0].Stable != 25 || *got[1].Canary != 130 || *got[1].Stable != 40 {
		t.Errorf("memory %v/%v, cpu %v/%v", *got[0].Canary, *got[0].Stable, *got[1].Canary, *got[1].Stable)
	}

	// A canary that does not run has no data, which is not an error.
	st.Canary.Version = "v3"
	got = s.Measure(context.Background(), st)
	if got[1].Canary != nil || got[1].Err != nil || *got[1].Stable != 40 {
		t.Errorf("canary not running: %+v", got[1])
	}
}

func TestSetRefusesUsageWithoutProcesses(t *testing.T) {
	_, err := NewSet(SetConfig{Rollout: "web", Plan: usagePlan(CPUUsage), Builtin: NewBuiltin(fakeStats{}, nil)})
	if err == nil || !strings.Contains(err.Error(), "metric cpu-usage: measured on processes") {
		t.Errorf("NewSet = %v", err)
	}
}

// fakeStats is a proxy that has seen nothing.
type fakeStats struct{}

func (fakeStats) Stats() traffic.Stats { return traffic.Stats{} }
