package metric

import (
	"context"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/spec"
)

func TestSetMeasuresTheStableAloneDuringTheWatch(t *testing.T) {
	src := fakeUsage{"v1": {40, 25}, "v2": {130, 70}}
	watch := &spec.PostPromotionPlan{Duration: 10 * time.Minute, Metrics: usagePlan(MemoryUsage).Metrics}
	s, err := NewSet(SetConfig{Rollout: "web", Plan: usagePlan(CPUUsage), PostPromotion: watch, Usage: src})
	if err != nil {
		t.Fatal(err)
	}
	now := metav1.NowMicro()
	st := v1alpha1.RolloutStatus{Phase: v1alpha1.PhaseSucceeded, Stable: &v1alpha1.VersionRef{Version: "v2"},
		Previous: &v1alpha1.VersionRef{Version: "v1"}, Watch: &v1alpha1.PostPromotionWatch{Until: &now, NextCheckAt: &now}}
	got := s.Measure(context.Background(), st)
	if len(got) != 1 || got[0].Metric != MemoryUsage || got[0].Canary != nil || got[0].Stable == nil || *got[0].Stable != 70 {
		t.Fatalf("during the watch measured %+v, want memory-usage of the new stable v2 alone", got)
	}
	// Once the watch ended, the analysis metrics are measured again.
	st.Watch.Outcome = v1alpha1.WatchPassed
	if got := s.Measure(context.Background(), st); len(got) != 1 || got[0].Metric != CPUUsage {
		t.Errorf("after the watch measured %+v", got)
	}
}

func TestSetRefusesAWatchedMetricItCannotMeasure(t *testing.T) {
	watch := &spec.PostPromotionPlan{Duration: time.Minute, Metrics: usagePlan(CPUUsage).Metrics}
	_, err := NewSet(SetConfig{Rollout: "web", PostPromotion: watch, Builtin: NewBuiltin(fakeStats{}, nil)})
	if err == nil || err.Error() != "spec.postPromotion: metric cpu-usage: measured on processes pipit runs, and this rollout runs none" {
		t.Errorf("NewSet = %v", err)
	}
}
