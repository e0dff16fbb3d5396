package metric

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/rollout"
	"github.com/pipit-dev/pipit/internal/spec"
	"github.com/pipit-dev/pipit/internal/testenv/fakeclock"
	"github.com/pipit-dev/pipit/internal/testenv/promserver"
)

// shopCounts are an application's counts of its users by role: the
// visitors of each version and those who checked out.
const shopCounts = `shop_visitors_total{role="stable"} 1000
shop_visitors_total{role="canary"} 400
shop_checkouts_total{role="stable"} 100
shop_checkouts_total{role="canary"} 60
`

// goalMetric is conversion-rate:checkout counted by the queries of
// shopCounts; over a window of {{ .Elapsed }}, which must be a duration
// PromQL reads for the query to run.
func goalMetric(address string) spec.PlanMetric {
	q := func(series string) string {
		return fmt.Sprintf(`sum(max_over_time(%s{role="{{ .Role }}"}[{{ .Elapsed }}]))`, series)
	}
	return spec.PlanMetric{MetricSpec: v1alpha1.MetricSpec{Name: "conversion-rate:checkout"},
		GoalCounts: &v1alpha1.PrometheusGoal{Address: address, Visitors: q("shop_visitors_total"), Conversions: q("shop_checkouts_total")}}
}

// TestGoalCountedInPrometheus measures a goal's conversions from a real
// Prometheus scraping the application's counts: the rates, with the
// counts behind them, for each version, from the Prometheus the runtime
// gives when the goal names none.
func TestGoalCountedInPrometheus(t *testing.T) {
	exporter := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, shopCounts) }))
	defer exporter.Close()
	prom := promserver.Start(t, []string{exporter.URL}, 200*time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := prom.WaitForSamples(ctx, `shop_checkouts_total{role="canary"}`); err != nil {
		t.Fatal(err)
	}
	set, err := NewSet(SetConfig{Rollout: "shop", Plan: spec.AnalysisPlan{Interval: time.Second, Metrics: []spec.PlanMetric{goalMetric("")}},
		GoalPrometheus: prom.URL})
	if err != nil {
		t.Fatal(err)
	}
	started := metav1.NewMicroTime(time.Now().Add(-90 * time.Second))
	st := v1alpha1.RolloutStatus{StartedAt: &started, Stable: &v1alpha1.VersionRef{Version: "v1"}, Canary: &v1alpha1.VersionRef{Version: "v2"}}
	got := set.Measure(ctx, st)
	if len(got) != 1 || got[0].Err != nil {
		t.Fatalf("measurements %+v", got)
	}
	m := got[0]
	want := func(side string, rate *float64, users *rollout.Conversions, wantRate float64, wantUsers rollout.Conversions) {
		if rate == nil || *rate != wantRate || users == nil || *users != wantUsers {
			t.Errorf("%s: rate %v, users %+v; want %v%% of %+v", side, rate, users, wantRate, wantUsers)
		}
	}
	want("canary", m.Canary, m.CanaryUsers, 15, rollout.Conversions{Converted: 60, Visitors: 400})
	want("stable", m.Stable, m.StableUsers, 10, rollout.Conversions{Converted: 100, Visitors: 1000})

	t.Run("conversions capped at the visitors", func(t *testing.T) {
		g := goalMetric(prom.URL).GoalCounts
		g.Visitors = `sum(shop_checkouts_total{role="{{ .Role }}"}) - 10`
		counts, err := NewGoalCounts(*g, "", Env{})
		if err != nil {
			t.Fatal(err)
		}
		c, err := counts.Conversions(ctx, Query{Role: "canary", Elapsed: time.Minute})
		if err != nil || c != (rollout.Conversions{Converted: 50, Visitors: 50}) {
			t.Errorf("got %+v, %v; want 50 of 50", c, err)
		}
	})
	t.Run("a query that fails names its side and query", func(t *testing.T) {
		bad := goalMetric(prom.URL)
		bad.GoalCounts.Conversions = `sum(shop_checkouts_total{role="{{ .Role }}"}[1m])`
		set, err := NewSet(SetConfig{Plan: spec.AnalysisPlan{Interval: time.Second, Metrics: []spec.PlanMetric{bad}}})
		if err != nil {
			t.Fatal(err)
		}
		m := set.Measure(ctx, st)[0]
		if m.Err == nil || !strings.Contains(m.Err.Error(), "canary: conversions: prometheus") {
			t.Errorf("err %v, want the canary's conversions query named", m.Err)
		}
	})
}

// A goal that names no Prometheus, where the runtime has none, is refused
// when the rollout's metrics are built.
func TestGoalWithoutPrometheusRefused(t *testing.T) {
	_, err := NewSet(SetConfig{Plan: spec.AnalysisPlan{Metrics: []spec.PlanMetric{goalMetric("")}}})
	if err == nil || !strings.Contains(err.Error(), "metric conversion-rate:checkout: prometheus: the goal names no address") {
		t.Errorf("err %v", err)
	}
}

// The goals' window runs from the experiment's start, else the
// rollout's, in whole seconds rounded up.
func TestElapsedWindow(t *testing.T) {
	now := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	set := &Set{clock: fakeclock.New(now), plan: spec.AnalysisPlan{Interval: 30 * time.Second}}
	at := func(d time.Duration) *metav1.MicroTime { t := metav1.NewMicroTime(now.Add(-d)); return &t }
	for _, tc := range []struct {
		name string
		st   v1alpha1.RolloutStatus
		want time.Duration
	}{
		{"nothing started: the interval", v1alpha1.RolloutStatus{}, 30 * time.Second},
		{"the rollout", v1alpha1.RolloutStatus{StartedAt: at(90*time.Second + time.Millisecond)}, 91 * time.Second},
		{"the experiment first", v1alpha1.RolloutStatus{StartedAt: at(time.Hour),
			Experiment: &v1alpha1.ExperimentStatus{StartedAt: at(10 * time.Minute)}}, 10 * time.Minute},
		{"at least a second", v1alpha1.RolloutStatus{StartedAt: at(0)}, time.Second},
	} {
		if got := set.elapsed(tc.st); got != tc.want {
			t.Errorf("%s: elapsed %s, want %s", tc.name, got, tc.want)
		}
	}
}
