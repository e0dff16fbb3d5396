package spec_test

import (
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/metric"
	"github.com/pipit-dev/pipit/internal/spec"
)

// TestMetricNamesMatchTheBuiltinProvider keeps validation in step with
// what the built-in provider measures: every metric it measures is
// accepted, and the names offered for an unknown one are exactly its.
func TestMetricNamesMatchTheBuiltinProvider(t *testing.T) {
	rollout := func(metric string) *v1alpha1.Rollout {
		stepWeight := v1alpha1.PercentOf(10)
		limit := int64(512 << 20)
		return &v1alpha1.Rollout{
			TypeMeta:   metav1.TypeMeta{APIVersion: v1alpha1.APIVersion, Kind: v1alpha1.KindRollout},
			ObjectMeta: metav1.ObjectMeta{Name: "web"},
			Spec: v1alpha1.RolloutSpec{
				Service: &v1alpha1.ServiceSpec{Listen: ":8080", Stable: v1alpha1.Upstream{Version: "v1",
					Process: &v1alpha1.ProcessSpec{Command: "app", MemoryLimitBytes: &limit}},
					Traffic: &v1alpha1.TrafficSpec{UserKey: []v1alpha1.UserKeySource{{Header: "X-User-ID"}}}},
				Strategy: v1alpha1.Strategy{StepWeight: &stepWeight},
				Analysis: &v1alpha1.AnalysisSpec{Metrics: []v1alpha1.MetricSpec{{Name: metric}},
					Goals: []v1alpha1.Goal{{Name: "buy", Path: &v1alpha1.StringMatch{Exact: "/buy"}}}},
			},
		}
	}
	for _, name := range metric.BuiltinNames {
		if errs := spec.Validate(rollout(name)); len(errs) > 0 {
			t.Errorf("%s refused: %v", name, errs)
		}
	}
	errs := spec.Validate(rollout("cpu"))
	want := "the built-in metrics are " + strings.Join(metric.BuiltinNames, ", ") + ", and"
	if len(errs) != 1 || !strings.Contains(errs[0].Reason, want) {
		t.Errorf("unknown metric: %v\nwant the reason to contain %q", errs, want)
	}
}
