package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/loadgen"
	"github.com/pipit-dev/pipit/internal/testenv/promserver"
)

// experimentRollout is an A/B test of v2 against v1 on the goal checkout,
// by the users' X-User-ID, looked at every half second.
const experimentRollout = `apiVersion: pipit.dev/v1alpha1
kind: Rollout
metadata:
  name: shop
spec:
  service:
    listen: %s
    stable: {url: %q, version: v1}
    canary: {url: %q, version: v2}
    healthCheck: {path: /health, interval: 250ms}
    traffic:
      userKey: [{header: X-User-ID}]
  strategy:
    experiment:
      split: 50
      minSample: 150
      maxDuration: 90s
  analysis:
    interval: 500ms
    goals:
    - {name: checkout, method: {exact: POST}, path: {exact: /checkout}}
    metrics:
    - name: request-success-rate
      thresholdRange: {min: 99}
`

// TestExperimentNamesTheWinner runs an experiment through `pipit up`: the
// sample apps lead 8% of v1's visitors and 25% of v2's to the goal, the
// simulated users follow, and pipit names v2 the winner with its numbers
// in `pipit status -o json` and the history, and promotes it.
func TestExperimentNamesTheWinner(t *testing.T) {
	stable := sampleApp(t, "v1", "--conversion-rate", "0.08")
	canary := sampleApp(t, "v2", "--conversion-rate", "0.25")
	listen := freePort(t)
	file := filepath.Join(t.TempDir(), "shop.yaml")
	if err := os.WriteFile(file, []byte(fmt.Sprintf(experimentRollout, listen, stable, canary)), 0o600); err != nil {
		t.Fatal(err)
	}
	d := startUp(t, file, t.TempDir())
	d.name = "shop"
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go loadgen.RunUsers(ctx, loadgen.UsersConfig{URL: "http://" + listen + "/", Rate: 100, Duration: time.Hour, Timeout: 10 * time.Second})

	d.waitFor(90*time.Second, "the experiment's end", func(st v1alpha1.RolloutStatus) bool { return st.Phase.Terminal() })
	cancel()
	st := d.status().Status
	x := st.Experiment
	if st.Phase != v1alpha1.PhaseSucceeded || x == nil || x.Winner != v1alpha1.WinnerTreatment || st.Stable.Version != "v2" {
		t.Fatalf("phase %s, stable %+v, experiment %+v: want v2 promoted as the winner", st.Phase, st.Stable, x)
	}
	if x.Control.Visitors < 150 || x.Treatment.Visitors < 150 || x.Control.Rate == nil || x.Treatment.Rate == nil ||
		*x.Treatment.Rate <= *x.Control.Rate || x.Difference == nil || len(x.Interval) != 2 || x.Interval[0] <= 0 || x.PValue == nil {
		t.Errorf("experiment numbers %+v: want 150 visitors a side at least, v2 converting better, an interval above 0 and a p-value", x)
	}
	var concluded string
	for _, e := range d.history() {
		if e.Reason == "ExperimentConcluded" {
			concluded = e.Message
		}
	}
	if !strings.Contains(concluded, "winner treatment (v2) — conversion on checkout: control ") || !strings.Contains(concluded, "interval") {
		t.Errorf("history's ExperimentConcluded: %q, want the winner with its numbers", concluded)
	}
}

// kubeExperimentSpec is an experiment behind a Gateway API route: the
// requests with the header X-Variant: b go to the canary, and the goal is
// counted from the application's counters in Prometheus.
const kubeExperimentSpec = `
  kubernetes:
    router:
      gatewayAPI:
        parentRefs: [{name: gw}]
    traffic:
      rules:
        - {name: variant-b, to: canary, headers: {X-Variant: {exact: b}}}
  strategy:
    experiment: {minSample: 200, maxDuration: 5m}
  analysis:
    interval: 1s
    goals:
      - name: checkout
        prometheus:
          visitors: sum(increase(visitors_total{service="web-{{ .Role }}"}[{{ .Elapsed }}]))
          conversions: sum(increase(checkouts_total{service="web-{{ .Role }}"}[{{ .Elapsed }}]))
`

// TestKubeExperimentNamesTheWinner runs an experiment through `pipit
// controller --prometheus-url`: the treatment gets its group's requests
// with no weight, converts 20% of its users against the control's 10%, is
// named the winner in `pipit status --kube`, and promoted.
func TestKubeExperimentNamesTheWinner(t *testing.T) {
	t.Parallel()
	e := newKubeEnv(t, 2, kubeExperimentSpec)
	counters := promserver.Counters(t, map[string]float64{
		`visitors_total{service="web-stable"}`: 100, `checkouts_total{service="web-stable"}`: 10,
		`visitors_total{service="web-canary"}`: 100, `checkouts_total{service="web-canary"}`: 20,
	})
	prom := promserver.Start(t, []string{counters}, 200*time.Millisecond)
	e.startController(false, "--prometheus-url", prom.URL)
	e.WaitInstalled("web")
	e.SetImage("web", "registry.example/web:v2")
	e.WaitRollout("web", "the experiment under way", func(r *v1alpha1.Rollout) bool { return r.Status.Experiment != nil })
	if res := e.kubectlVerb("status", "web"); res.code != 0 || !strings.Contains(res.stdout, "(the treatment gets the requests its traffic rules send it)") {
		t.Errorf("pipit status --kube mid-experiment: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
	r := e.WaitPhase("web", v1alpha1.PhaseSucceeded)
	x := r.Status.Experiment
	if x == nil || x.Winner != v1alpha1.WinnerTreatment {
		t.Fatalf("experiment %+v: want the treatment the winner", x)
	}
	if c, tr := x.Control.Rate, x.Treatment.Rate; c == nil || tr == nil || *c < 8 || *c > 12 || *tr < 17 || *tr > 23 {
		t.Errorf("experiment %+v: want the control near 10%% and the treatment near 20%%", x)
	}
	res := e.kubectlVerb("status", "web")
	if res.code != 0 || !strings.Contains(res.stdout, "winner treatment") || !strings.Contains(res.stdout, "conversion on checkout: control ") {
		t.Errorf("pipit status --kube after the experiment: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
}
