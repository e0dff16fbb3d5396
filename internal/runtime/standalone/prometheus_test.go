package standalone

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/client"
	"github.com/pipit-dev/pipit/internal/loadgen"
	"github.com/pipit-dev/pipit/internal/sampleapp"
	"github.com/pipit-dev/pipit/internal/testenv/promserver"
)

// promRollout's analysis comes only from a real Prometheus that scrapes
// the daemon's /metrics: the error rate and the p95 latency of each
// version, from the proxy's own series. The sequential test is off so
// that Prometheus alone decides.
func promRollout(listen, stableURL, promURL string) []byte {
	const errorRate = `100 * (sum(rate(pipit_proxy_requests_total{rollout="{{ .Rollout }}",version="{{ .Version }}",code_class=~"5xx|error"}[3s])) or vector(0))` +
		` / sum(rate(pipit_proxy_requests_total{rollout="{{ .Rollout }}",version="{{ .Version }}"}[3s]))`
	const p95 = `1000 * histogram_quantile(0.95, sum by (le) (rate(pipit_proxy_request_duration_seconds_bucket{rollout="{{ .Rollout }}",version="{{ .Version }}"}[3s])))`
	return []byte(fmt.Sprintf(`apiVersion: pipit.dev/v1alpha1
kind: Rollout
metadata: {name: web}
spec:
  service:
    listen: %s
    stable: {url: %q, version: v1}
    healthCheck: {interval: 100ms, timeout: 2s}
  strategy:
    steps:
    - setWeight: 20
    - analysis: {checks: 2}
    - setWeight: 50
    - analysis: {checks: 2}
  analysis:
    interval: 1s
    failureLimit: 1
    sequential: {enabled: false}
    metrics:
    - name: error-rate
      provider: {prometheus: {address: %q, query: %q, timeout: 5s}}
      thresholdRange: {max: 5}
    - name: latency-p95
      provider: {prometheus: {address: %q, query: %q, timeout: 5s}}
      thresholdRange: {max: 150}
`, listen, stableURL, promURL, errorRate, promURL, p95))
}

func TestPrometheusAnalysisPromotesHealthyAndRollsBackFaulty(t *testing.T) {
	api := freeAddr(t)
	prom := promserver.Start(t, []string{api}, 200*time.Millisecond)
	cases := []struct {
		name   string
		canary sampleapp.Config
		want   v1alpha1.Phase
	}{
		{"healthy", sampleapp.Config{Version: "v2"}, v1alpha1.PhaseSucceeded},
		// 10% errors break the 5% bound; five in a row, which the proxy's
		// outlier detection would eject before Prometheus is asked, are
		// one chance in 100,000.
		{"faulty", sampleapp.Config{Version: "v2", ErrorRate: 0.1, Latency: 300 * time.Millisecond}, v1alpha1.PhaseRolledBack},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			stable := app(t, sampleapp.Config{Version: "v1"})
			canary := app(t, tc.canary)
			listen, dir := freeAddr(t), t.TempDir()
			d, err := Start(context.Background(), Config{
				Sources:  []Source{{File: "web.yaml", Data: promRollout(listen, stable.URL, prom.URL)}},
				StateDir: dir, APIAddr: api, Logger: slog.New(slog.DiscardHandler),
			})
			if err != nil {
				t.Fatal(err)
			}
			defer d.Stop(context.Background())
			c, err := client.FromStateDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go loadgen.Run(ctx, loadgen.Config{URL: "http://" + listen + "/", Rate: 100, Duration: time.Minute})
			deployV2(t, c, canary.URL)
			st := waitFor(t, c, 45*time.Second, string(tc.want), phaseIs(tc.want))
			last := st.Analysis.LastResults
			if tc.want == v1alpha1.PhaseRolledBack {
				if st.Rollback.Metric != "error-rate" && st.Rollback.Metric != "latency-p95" {
					t.Errorf("rollback %+v: want a Prometheus metric named", st.Rollback)
				}
				return
			}
			// The values really came from Prometheus: both versions measured.
			for _, r := range last {
				if r.Canary == nil || r.Stable == nil || !strings.Contains(r.Message, "within") {
					t.Errorf("last result %+v", r)
				}
			}
		})
	}
}
