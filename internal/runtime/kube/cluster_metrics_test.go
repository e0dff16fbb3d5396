package kube

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/analysis"
	"github.com/pipit-dev/pipit/internal/testenv/promserver"
)

// appExporter serves the application-level convention's request counts
// (http_requests_total by namespace, Service and code) of a steady load:
// the stable Service's requests all succeed, a fifth of the canary's fail.
// The counts grow with the time since the start, as a real service's do.
func appExporter(t *testing.T, namespace string) string {
	t.Helper()
	start := time.Now()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		secs := time.Since(start).Seconds()
		for _, v := range []struct {
			service         string
			perSec, failing float64
		}{{"web-stable", 200, 0}, {"web-canary", 50, 10}} {
			fmt.Fprintf(w, "http_requests_total{namespace=%q,service=%q,code=\"200\"} %d\n", namespace, v.service, int(secs*(v.perSec-v.failing)))
			fmt.Fprintf(w, "http_requests_total{namespace=%q,service=%q,code=\"503\"} %d\n", namespace, v.service, int(secs*v.failing))
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/metrics"
}

// clusterMetricSpecs are rollouts with the replica router measuring a
// built-in metric without a provider, and the metric that should roll the
// bad canary back: the threshold with the sequential test off, the
// sequential test when the threshold cannot fail.
var clusterMetricSpecs = []struct {
	name, spec, rollbackMetric string
}{
	{"threshold", `
  analysis:
    interval: 1s
    sequential: {enabled: false}
    metrics:
      - name: request-success-rate
        thresholdRange: {min: 99}
`, "request-success-rate"},
	{"sequential", `
  analysis:
    interval: 1s
    metrics:
      - name: request-count
        thresholdRange: {min: 0}
`, analysis.ErrorRateAlarm},
}

// TestBuiltinMetricFromPrometheusRollsBack rolls a bad canary back on a
// built-in metric read from a real Prometheus, which scrapes the series
// of the application-level convention.
func TestBuiltinMetricFromPrometheusRollsBack(t *testing.T) {
	t.Parallel()
	for _, tc := range clusterMetricSpecs {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newScenario(t)
			s.prometheusURL = promserver.Start(t, []string{appExporter(t, s.Namespace)}, 200*time.Millisecond).URL
			s.createWeb(4, `
  strategy:
    steps:
      - setWeight: 25
      - pause: {duration: 2s}
      - analysis: {}
      - setWeight: 50
      - pause: {duration: 2s}
      - analysis: {}
`+tc.spec)
			s.startController()
			s.WaitInstalled("web")
			s.SetImage("web", "registry.example/web:v2")
			r := s.WaitPhase("web", v1alpha1.PhaseRolledBack)
			if r.Status.Rollback == nil || r.Status.Rollback.Metric != tc.rollbackMetric {
				t.Errorf("rollback %+v, want one on %s", r.Status.Rollback, tc.rollbackMetric)
			}
		})
	}
}
