package standalone

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"sigs.k8s.io/yaml"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/client"
	"github.com/pipit-dev/pipit/internal/loadgen"
	"github.com/pipit-dev/pipit/internal/sampleapp"
	"github.com/pipit-dev/pipit/internal/telemetry"
	"github.com/pipit-dev/pipit/internal/testenv/promserver"
	"github.com/pipit-dev/pipit/internal/testenv/tools"
)

// The observability pack shipped under deploy/, relative to the
// repository's root.
const (
	shippedRules     = "deploy/prometheus/pipit-alerts.yaml"
	shippedDashboard = "deploy/grafana/pipit-dashboard.json"
)

// alertWait bounds the wait for an alert: a few scrapes and evaluations
// of 200 ms each, on a machine other tests share.
const alertWait = 30 * time.Second

// repoPath is the path of rel, relative to the repository's root.
func repoPath(t *testing.T, rel string) string {
	t.Helper()
	root, err := tools.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(root, rel)
}

// answering is a notification endpoint that answers every message with
// code.
func answering(t *testing.T, code int) string {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(code) }))
	t.Cleanup(s.Close)
	return s.URL
}

// firing is the query of alert's firing instances for rollout web.
func firing(alert string) string {
	return fmt.Sprintf(`ALERTS{alertname=%q,alertstate="firing",rollout="web"}`, alert)
}

// TestShippedAlertsFireOnARealRollback runs the shipped alerting rules,
// verbatim, in a real Prometheus scraping a real daemon whose canary is
// rolled back and one of whose notifiers refuses every message; then
// checks the shipped dashboard's and rules' queries against the series
// the daemon exported.
func TestShippedAlertsFireOnARealRollback(t *testing.T) {
	api := freeAddr(t)
	prom := promserver.StartWithRules(t, []string{api}, 200*time.Millisecond,
		[]string{repoPath(t, shippedRules)})
	stable := app(t, sampleapp.Config{Version: "v1"})
	canary := app(t, sampleapp.Config{Version: "v2", ErrorRate: 0.5})
	doc := string(rolloutYAML(stable.URL, "1s")) +
		fmt.Sprintf("  notifications:\n  - {name: team, type: webhook, url: %q, severity: info}\n"+
			"  - {name: broken, type: webhook, url: %q, severity: info}\n",
			answering(t, http.StatusOK), answering(t, http.StatusBadRequest))
	dir := t.TempDir()
	d, err := Start(context.Background(), Config{Sources: []Source{{File: "web.yaml", Data: []byte(doc)}},
		StateDir: dir, APIAddr: api, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Stop(context.Background())
	c, err := client.FromStateDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), alertWait)
	defer cancel()
	if err := prom.WaitForSamples(ctx, `pipit_rollout_phase{rollout="web",phase="Idle"} == 1`); err != nil {
		t.Fatal(err)
	}
	// Scraped and evaluated, yet nothing to alert on before the rollout.
	quiet, cancelQuiet := context.WithTimeout(ctx, time.Second)
	defer cancelQuiet()
	if err := prom.WaitForSamples(quiet, `ALERTS{rollout="web"}`); err == nil {
		t.Error("an alert fired before the rollout started")
	}

	listen, _ := d.ProxyAddr("web")
	load, stopLoad := context.WithCancel(context.Background())
	defer stopLoad()
	go loadgen.Run(load, loadgen.Config{URL: "http://" + listen + "/", Rate: 200, Duration: alertWait})
	deployV2(t, c, canary.URL)
	waitFor(t, c, 40*time.Second, "RolledBack", phaseIs(v1alpha1.PhaseRolledBack))
	// The alerts' wait starts at the rollback: how long the rollout took
	// on a loaded machine is no part of it.
	ctx, cancel = context.WithTimeout(context.Background(), alertWait)
	defer cancel()
	for _, alert := range []string{"PipitRolloutRolledBack", "PipitNotifierFailing"} {
		if err := prom.WaitForSamples(ctx, firing(alert)); err != nil {
			t.Errorf("%s: %v", alert, err)
		}
	}
	short, cancelShort := context.WithTimeout(ctx, time.Second)
	defer cancelShort()
	if err := prom.WaitForSamples(short, `ALERTS{notifier="team"}`); err == nil {
		t.Error("PipitNotifierFailing fired for the notifier that delivers")
	}
	stopLoad()
	series := exported(t, d)
	checkQueries(t, shippedDashboard, dashboardQueries(t), series)
	checkQueries(t, shippedRules, ruleQueries(t), series)
}

// exported gathers the daemon's registry: the series /metrics serves.
func exported(t *testing.T, d *Daemon) map[string]dto.MetricType {
	t.Helper()
	mfs, err := d.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]dto.MetricType{}
	for _, mf := range mfs {
		out[mf.GetName()] = mf.GetType()
	}
	// After a rollback every series of the pack has samples.
	for _, name := range []string{telemetry.BuildInfo, telemetry.MetricValue, telemetry.Rollbacks, telemetry.Events,
		telemetry.StepDuration, telemetry.NotificationsSent, telemetry.NotificationsFailed, "pipit_proxy_requests_total"} {
		if _, ok := out[name]; !ok {
			t.Errorf("the daemon does not export %s", name)
		}
	}
	return out
}

// seriesName finds the names of pipit's series in a PromQL expression.
var seriesName = regexp.MustCompile(`\bpipit_[a-z0-9_]+`)

// histogramSuffix ends the names of a histogram's series.
var histogramSuffix = regexp.MustCompile(`_(bucket|sum|count)$`)

// checkQueries checks that every query of file names pipit's series, and
// only series in exported.
func checkQueries(t *testing.T, file string, exprs []string, exported map[string]dto.MetricType) {
	t.Helper()
	for _, expr := range exprs {
		names := seriesName.FindAllString(expr, -1)
		if len(names) == 0 {
			t.Errorf("%s: query %q names no pipit series", file, expr)
		}
		for _, n := range names {
			if _, ok := exported[n]; ok {
				continue
			}
			if base := histogramSuffix.ReplaceAllString(n, ""); exported[base] == dto.MetricType_HISTOGRAM {
				continue
			}
			t.Errorf("%s: query %q names %s, which pipit does not export", file, expr, n)
		}
	}
}

// dashboardQueries parses the shipped Grafana dashboard and returns its
// queries.
func dashboardQueries(t *testing.T) []string {
	t.Helper()
	raw, err := os.ReadFile(repoPath(t, shippedDashboard))
	if err != nil {
		t.Fatal(err)
	}
	var dash any
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("%s: %v", shippedDashboard, err)
	}
	exprs := queries(dash)
	if len(exprs) < 10 {
		t.Fatalf("%s: %d queries, want the panels' (10 or more)", shippedDashboard, len(exprs))
	}
	return exprs
}

// ruleQueries returns the expressions of the shipped alerting rules.
func ruleQueries(t *testing.T) []string {
	t.Helper()
	raw, err := os.ReadFile(repoPath(t, shippedRules))
	if err != nil {
		t.Fatal(err)
	}
	var rules struct {
		Groups []struct {
			Rules []struct {
				Expr string `json:"expr"`
			} `json:"rules"`
		} `json:"groups"`
	}
	if err := yaml.Unmarshal(raw, &rules); err != nil {
		t.Fatalf("%s: %v", shippedRules, err)
	}
	var exprs []string
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			exprs = append(exprs, r.Expr)
		}
	}
	if len(exprs) < 5 {
		t.Fatalf("%s: %d rules, want 5 or more", shippedRules, len(exprs))
	}
	return exprs
}

// queries collects the PromQL of a Grafana dashboard: every "expr" (panel
// targets, annotations) and "definition" (template variables).
func queries(v any) []string {
	var out []string
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			if s, ok := e.(string); ok && (k == "expr" || k == "definition") {
				out = append(out, s)
				continue
			}
			out = append(out, queries(e)...)
		}
	case []any:
		for _, e := range v {
			out = append(out, queries(e)...)
		}
	}
	return out
}
