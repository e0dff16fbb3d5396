package standalone

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/client"
	"github.com/pipit-dev/pipit/internal/loadgen"
	"github.com/pipit-dev/pipit/internal/sampleapp"
	"github.com/pipit-dev/pipit/internal/testenv/promserver"
)

// errorRatioTemplate is a template of the share of a version's requests
// whose code class matches the argument classes, read from the proxy's
// series in Prometheus; max is its default threshold.
func errorRatioTemplate(promURL string, max float64) string {
	const query = `100 * (sum(rate(pipit_proxy_requests_total{rollout="{{ .Rollout }}",version="{{ .Version }}",code_class=~"{{ .Args.classes }}"}[3s])) or vector(0))` +
		` / sum(rate(pipit_proxy_requests_total{rollout="{{ .Rollout }}",version="{{ .Version }}"}[3s]))`
	return fmt.Sprintf(`apiVersion: pipit.dev/v1alpha1
kind: RolloutMetricTemplate
metadata: {name: error-ratio}
spec:
  provider: {prometheus: {address: %q, query: %q, timeout: 5s}}
  thresholdRange: {max: %g}
  unit: "%%"
`, promURL, query, max)
}

// templatedPromRollout measures its canary with errorRatioTemplate, in
// another file, and waits for a person after its first check.
func templatedPromRollout(listen, stableURL string) string {
	return rolloutDoc("web", urlService(listen, stableURL, ""), `  strategy:
    steps:
    - setWeight: 20
    - analysis: {checks: 2}
    - pause: {}
    - setWeight: 50
    - analysis: {checks: 2}
  analysis:
    interval: 1s
    sequential: {enabled: false}
    metrics:
    - name: errors
      templateRef: {name: error-ratio}
      args: {classes: "5xx|error"}
`)
}

// TestTemplatedMetricMeasuredAndReloaded: a rollout's metric is measured
// by a template given in another file, with its argument, against a real
// Prometheus; a reload that changes only the template's threshold changes
// the rollout's analysis, and the canary that passed the loose threshold
// is rolled back by the strict one.
func TestTemplatedMetricMeasuredAndReloaded(t *testing.T) {
	api := freeAddr(t)
	prom := promserver.Start(t, []string{api}, 200*time.Millisecond)
	stable := app(t, sampleapp.Config{Version: "v1"})
	canary := app(t, sampleapp.Config{Version: "v2", ErrorRate: 0.2})
	listen, dir := freeAddr(t), t.TempDir()
	f := &rolloutFiles{}
	f.set("templates.yaml", errorRatioTemplate(prom.URL, 100))
	f.set("web.yaml", templatedPromRollout(listen, stable.URL))
	sources, _ := f.read()
	d, err := Start(context.Background(), Config{Sources: sources, Read: f.read, StateDir: dir, APIAddr: api, Logger: slog.New(slog.DiscardHandler)})
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

	st := waitFor(t, c, 45*time.Second, "the pause after the checks", func(st v1alpha1.RolloutStatus) bool {
		return st.CurrentStep == 2 && st.Phase == v1alpha1.PhaseAwaitingDecision
	})
	last := st.Analysis.LastResults
	if len(last) != 1 || last[0].Name != "errors" || last[0].Canary == nil || *last[0].Canary <= 0 || last[0].Stable == nil {
		t.Fatalf("last results %+v: want the canary's errors measured in Prometheus, above 0", last)
	}

	f.set("templates.yaml", errorRatioTemplate(prom.URL, 5))
	res := reload(t, d)
	if len(res.Changed) != 1 || !slices.Contains(res.Changed[0].Fields, "spec.analysis") {
		t.Fatalf("reload: %+v, want web's analysis changed by its template", res)
	}
	if _, err := c.Submit(context.Background(), "web", approveCommand()); err != nil {
		t.Fatal(err)
	}
	st = waitFor(t, c, 45*time.Second, "RolledBack", phaseIs(v1alpha1.PhaseRolledBack))
	if st.Rollback == nil || st.Rollback.Metric != "errors" {
		t.Errorf("rollback %+v: want the templated metric errors named", st.Rollback)
	}
}
