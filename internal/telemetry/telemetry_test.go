package telemetry

import (
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/notify"
)

// samples gathers reg as "name{label=value,...}" → value, labels sorted.
func samples(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			sort.Strings(labels)
			out[mf.GetName()+"{"+strings.Join(labels, ",")+"}"] = value(m)
		}
	}
	return out
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount())
	}
	return -1
}

func event(at time.Time, typ, reason string, phase v1alpha1.Phase) v1alpha1.Event {
	return v1alpha1.Event{Time: metav1.NewMicroTime(at), Type: typ, Reason: reason, Phase: phase}
}

// rolledBack is the status and events of a canary rolled back at step 1.
func rolledBack(t0 time.Time) (v1alpha1.RolloutStatus, []v1alpha1.Event) {
	canary, stable := 7.5, 0.5
	st := v1alpha1.RolloutStatus{Phase: v1alpha1.PhaseRolledBack, CurrentStep: 1}
	st.Analysis.FailedChecks = 2
	st.Analysis.LastResults = []v1alpha1.MetricResult{{Name: "error-rate", Canary: &canary, Stable: &stable}}
	return st, []v1alpha1.Event{
		event(t0, v1alpha1.EventWarning, "CheckFailed", v1alpha1.PhaseProgressing),
		event(t0, v1alpha1.EventWarning, "RollingBack", v1alpha1.PhaseRollingBack),
		event(t0.Add(30*time.Second), v1alpha1.EventWarning, "RolledBack", v1alpha1.PhaseRolledBack),
	}
}

func TestRolloutSeries(t *testing.T) {
	reg := prometheus.NewRegistry()
	r := New(reg)
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	start := v1alpha1.RolloutStatus{Phase: v1alpha1.PhaseProgressing, CanaryWeight: v1alpha1.PercentOf(20)}
	r.Set("shop", "web", start)
	r.Observe("shop", "web", start, []v1alpha1.Event{event(t0, v1alpha1.EventNormal, "Started", v1alpha1.PhaseProgressing)})
	st, events := rolledBack(t0)
	r.Set("shop", "web", st)
	r.Observe("shop", "web", st, events)
	r.Notifiers("shop", "web", func() []notify.Stats { return []notify.Stats{{Name: "chat", Sent: 3, Failed: 2}} })
	got := samples(t, reg)
	want := map[string]float64{
		`pipit_rollout_phase{namespace=shop,phase=RolledBack,rollout=web}`:                      1,
		`pipit_rollout_phase{namespace=shop,phase=Progressing,rollout=web}`:                     0,
		`pipit_rollout_step{namespace=shop,rollout=web}`:                                        1,
		`pipit_rollout_analysis_checks{namespace=shop,outcome=failed,rollout=web}`:              2,
		`pipit_rollout_metric_value{metric=error-rate,namespace=shop,role=canary,rollout=web}`:  7.5,
		`pipit_rollout_metric_value{metric=error-rate,namespace=shop,role=stable,rollout=web}`:  0.5,
		`pipit_rollout_events_total{namespace=shop,reason=RolledBack,rollout=web,type=Warning}`: 1,
		`pipit_rollout_rollbacks_total{namespace=shop,outcome=RolledBack,rollout=web}`:          1,
		`pipit_rollout_rollbacks_total{namespace=shop,outcome=Aborted,rollout=web}`:             0,
		`pipit_rollout_step_duration_seconds{namespace=shop,rollout=web}`:                       1,
		`pipit_notifications_sent_total{namespace=shop,notifier=chat,rollout=web}`:              3,
		`pipit_notifications_failed_total{namespace=shop,notifier=chat,rollout=web}`:            2,
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %v (present %v), want %v", k, g, ok, v)
		}
	}
	if n := countPrefix(got, BuildInfo+"{"); n != 1 {
		t.Errorf("%d %s series, want 1", n, BuildInfo)
	}
	r.Forget("shop", "web")
	for k := range samples(t, reg) {
		if strings.Contains(k, "rollout=web") {
			t.Errorf("%s still exported after Forget", k)
		}
	}
}

func TestSetReplacesTheValuesOfTheCheckBefore(t *testing.T) {
	reg := prometheus.NewRegistry()
	r := New(reg)
	st, _ := rolledBack(time.Now())
	r.Set("", "web", st)
	st.Analysis.LastResults = nil
	r.Set("", "web", st)
	if n := countPrefix(samples(t, reg), MetricValue+"{"); n != 0 {
		t.Errorf("%d metric values left from an earlier check", n)
	}
}

func countPrefix(m map[string]float64, prefix string) int {
	n := 0
	for k := range m {
		if strings.HasPrefix(k, prefix) {
			n++
		}
	}
	return n
}
