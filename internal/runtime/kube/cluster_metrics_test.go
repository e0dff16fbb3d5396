package kube

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/analysis"
	"github.com/pipit-dev/pipit/internal/testenv/promserver"
)

// loadExporter serves the request counts of a steady load, which write
// writes as series by Service and status: the stable Service's requests
// all succeed, a fifth of the canary's fail. The counts grow with the
// time since the start, as a real service's do.
func loadExporter(t *testing.T, write func(w io.Writer, service string, code, n int)) string {
	t.Helper()
	start := time.Now()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		secs := time.Since(start).Seconds()
		for _, v := range []struct {
			service         string
			perSec, failing float64
		}{{"web-stable", 200, 0}, {"web-canary", 50, 10}} {
			write(w, v.service, 200, int(secs*(v.perSec-v.failing)))
			write(w, v.service, 503, int(secs*v.failing))
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/metrics"
}

// appExporter serves the load as the application-level convention's
// request counts (http_requests_total by namespace, Service and code).
func appExporter(t *testing.T, namespace string) string {
	return loadExporter(t, func(w io.Writer, service string, code, n int) {
		fmt.Fprintf(w, "http_requests_total{namespace=%q,service=%q,code=\"%d\"} %d\n", namespace, service, code, n)
	})
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

// TestBuiltinMetricFromEnvoyGatewayRollsBack rolls a bad canary back on a
// built-in metric read from Envoy Gateway's series: the controller reads
// the clusters of the route its router wrote, rule 0 being pipit's rule
// for the traffic rule and rule 1 the split one.
func TestBuiltinMetricFromEnvoyGatewayRollsBack(t *testing.T) {
	t.Parallel()
	s := newScenario(t)
	clusters := map[string]string{"web-stable": "httproute/" + s.Namespace + "/web/rule/1/backend/0", "web-canary": "httproute/" + s.Namespace + "/web/rule/1/backend/1"}
	exporter := loadExporter(t, func(w io.Writer, service string, code, n int) {
		fmt.Fprintf(w, "envoy_cluster_upstream_rq{envoy_cluster_name=%q,envoy_response_code=\"%d\"} %d\n", clusters[service], code, n)
	})
	s.prometheusURL = promserver.Start(t, []string{exporter}, 200*time.Millisecond).URL
	s.createWeb(4, `
  kubernetes:
    router:
      gatewayAPI:
        parentRefs: [{name: gw}]
        implementation: envoyGateway
    traffic:
      rules:
        - name: force-canary
          to: canary
          headers: {canary: {exact: "true"}}
  strategy:
    steps:
      - setWeight: 25
      - pause: {duration: 2s}
      - analysis: {}
`+clusterMetricSpecs[0].spec)
	s.startController()
	s.WaitInstalled("web")
	s.SetImage("web", "registry.example/web:v2")
	r := s.WaitPhase("web", v1alpha1.PhaseRolledBack)
	if r.Status.Rollback == nil || r.Status.Rollback.Metric != clusterMetricSpecs[0].rollbackMetric {
		t.Errorf("rollback %+v, want one on %s", r.Status.Rollback, clusterMetricSpecs[0].rollbackMetric)
	}
}
