package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/controlapi"
)

func TestStatusTable(t *testing.T) {
	now := time.Date(2026, 7, 1, 9, 5, 0, 0, time.UTC)
	failed := webView(now)
	failed.Name = "shop"
	failed.Status.Phase = v1alpha1.PhaseRolledBack
	failed.Status.CanaryWeight = 0
	failed.Status.Message = "canary v2 rolled back: request-success-rate 91.5% < min 99%, more than the 0 failed checks allowed"
	failed.Status.Analysis.LastResults[0].Verdict = v1alpha1.VerdictFailed

	got := statusTable([]controlapi.RolloutView{idleView(), failed, webView(now)}, now)
	want := `NAME  PHASE        STEP             WEIGHT  STABLE  CANARY  LAST CHECK     MESSAGE
api   Idle         -                0%      v7      -       -              -
shop  RolledBack   4/6 pause 10m0s  0%      v1      v2      failed 2m ago  canary v2 rolled back: request-success-rate 91.5% < min 99%…
web   Progressing  4/6 pause 10m0s  25%     v1      v2      passed 2m ago  routing 25% to canary v2
`
	if got != want {
		t.Fatalf("statusTable:\n%s\nwant:\n%s", got, want)
	}
	if got := statusTable(nil, now); got != "No rollouts.\n" {
		t.Fatalf("empty table = %q", got)
	}
}

func TestStatusDetail(t *testing.T) {
	now := time.Date(2026, 7, 1, 9, 5, 0, 0, time.UTC)
	got := statusDetail(webView(now), now)
	want := `Name:      web
Phase:     Progressing
Message:   routing 25% to canary v2
Decision:  automatic
Proxy:     127.0.0.1:8080
Stable:    v1  http://127.0.0.1:9001
Canary:    v2  http://127.0.0.1:9002
Weight:    25%
Step:      4/6 pause 10m0s
Started:   2026-07-01 08:53:00 (12m ago)
Checks:    every 1m0s; expecting 40 requests/s; 4 passed, 0 failed; next in 40s

Steps:
     1  setWeight 5%
     2  analysis 1 check
     3  setWeight 25%
  >  4  pause 10m0s
     5  setWeight 50%
     6  analysis 1 check

Last check (2m ago, passed):
  METRIC                 STABLE    CANARY   RANGE       VERDICT
  request-success-rate   99.9%     99.75%   min 99%     Successful
  latency-p99            45.25ms   52.5ms   max 500ms   Successful

Live metrics (since 30s ago):
                 STABLE v1   CANARY v2
  Requests       1200        400
  Success rate   99.9%       99.75%
  Latency p50    12.3ms      14ms
  Latency p99    45.2ms      1.52s
  Health         healthy     healthy
`
	if got != want {
		t.Fatalf("statusDetail:\n%s\nwant:\n%s", got, want)
	}
}

func TestStatusDetailShowsTheMachinesOfAFleet(t *testing.T) {
	now := time.Date(2026, 7, 1, 9, 5, 0, 0, time.UTC)
	v := webView(now)
	v.Status.Canary = &v1alpha1.VersionRef{Version: "v2", URLs: []string{"http://10.0.0.7:8080", "http://10.0.0.8:8080"}}
	if got, want := statusDetail(v, now), "Canary:    v2  http://10.0.0.7:8080 http://10.0.0.8:8080\n"; !strings.Contains(got, want) {
		t.Fatalf("statusDetail:\n%s\nwant a line %q", got, want)
	}
}

func TestStatusDetailShowsWhyItStopped(t *testing.T) {
	now := time.Date(2026, 7, 1, 9, 5, 0, 0, time.UTC)
	v := webView(now)
	v.Status.Phase = v1alpha1.PhaseRolledBack
	v.Status.Rollback = &v1alpha1.Rollback{Outcome: v1alpha1.PhaseRolledBack, Reason: "request-success-rate 91.5% < min 99%",
		Metric: "request-success-rate", At: *mtime(now.Add(-time.Minute))}
	v.Status.Analysis.LastResults[0] = v1alpha1.MetricResult{Name: "request-success-rate", Stable: fptr(99.9), Canary: fptr(91.5),
		Verdict: v1alpha1.VerdictFailed, Message: "request-success-rate 91.5% < min 99%"}
	unhealthy := false
	v.Live.Canary.Healthy, v.Live.Canary.HealthReason = &unhealthy, "2 probes failed"
	got := statusDetail(v, now)
	for _, want := range []string{
		"Rollback:  request-success-rate 91.5% < min 99% (metric request-success-rate), 1m ago\n",
		"Last check (2m ago, failed):\n",
		"  request-success-rate   99.9%     91.5%    min 99%     Failed: request-success-rate 91.5% < min 99%\n",
		"unhealthy: 2 probes failed",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("detail lacks %q:\n%s", want, got)
		}
	}

	v.Status.Rollback = nil
	v.Status.Phase = v1alpha1.PhaseAwaitingDecision
	v.Status.Gate = &v1alpha1.Gate{Kind: v1alpha1.GateStage, Since: *mtime(now.Add(-3 * time.Minute)), Reason: "stage 2 passed"}
	if got := statusDetail(v, now); !strings.Contains(got,
		"Waiting for:  Stage decision since 3m ago: stage 2 passed (pipit promote web, or pipit abort web)\n") {
		t.Errorf("detail lacks the gate:\n%s", got)
	}
}

// An experiment's winner and numbers are shown in a line of their own.
func TestStatusDetailShowsTheExperiment(t *testing.T) {
	now := time.Date(2026, 7, 1, 9, 5, 0, 0, time.UTC)
	v := webView(now)
	v.Status.Experiment = &v1alpha1.ExperimentStatus{Goal: "checkout", PromoteIf: v1alpha1.PromoteIfBetter, Winner: v1alpha1.WinnerTreatment,
		Control:    v1alpha1.ExperimentVariant{Version: "v1", Visitors: 900, Converted: 90, Rate: fptr(10)},
		Treatment:  v1alpha1.ExperimentVariant{Version: "v2", Visitors: 900, Converted: 135, Rate: fptr(15)},
		Difference: fptr(5), Interval: []float64{1.95, 8.05}, Confidence: 0.95, PValue: fptr(0.0406)}
	want := "Experiment:  winner treatment (v2) — conversion on checkout: control 10.00% (90/900), treatment 15.00% (135/900), " +
		"difference +5.00 points (95% interval +1.95 to +8.05), p = 0.0406\n"
	if got := statusDetail(v, now); !strings.Contains(got, want) {
		t.Errorf("detail lacks %q:\n%s", want, got)
	}
}

func TestStatusCommand(t *testing.T) {
	dir := startDaemon(t, newFakeBackend())

	code, out, errOut := run(t, "status", "--state-dir", dir)
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "NAME") || !strings.HasPrefix(lines[1], "api ") ||
		!strings.Contains(lines[2], "4/6 pause 10m0s") || !strings.Contains(lines[2], "passed 2m ago") {
		t.Fatalf("table:\n%s", out)
	}

	code, out, errOut = run(t, "status", "web", "--state-dir", dir)
	if code != ExitOK || !strings.Contains(out, "Last check (2m ago, passed):") || !strings.Contains(out, "Live metrics") {
		t.Fatalf("exit %d, detail:\n%s%s", code, out, errOut)
	}

	code, out, _ = run(t, "status", "--state-dir", dir, "-o", "json")
	var views []controlapi.RolloutView
	if err := json.Unmarshal([]byte(out), &views); code != ExitOK || err != nil || len(views) != 2 || views[1].Status.CanaryWeight != 25000 {
		t.Fatalf("exit %d, json (%v):\n%s", code, err, out)
	}

	code, out, _ = run(t, "status", "web", "--state-dir", dir, "-o", "yaml")
	var doc struct {
		Name   string `yaml:"name"`
		Status struct {
			Phase        string  `yaml:"phase"`
			CanaryWeight float64 `yaml:"canaryWeight"`
		} `yaml:"status"`
	}
	if err := yaml.Unmarshal([]byte(out), &doc); code != ExitOK || err != nil || doc.Name != "web" ||
		doc.Status.Phase != "Progressing" || doc.Status.CanaryWeight != 25 {
		t.Fatalf("exit %d, yaml (%v):\n%s", code, err, out)
	}
}

func TestStatusFailures(t *testing.T) {
	dir := startDaemon(t, newFakeBackend())
	addr, err := os.ReadFile(filepath.Join(dir, controlapi.AddressFile))
	if err != nil {
		t.Fatal(err)
	}
	wrongToken := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(wrongToken, []byte("nope"), 0o600); err != nil {
		t.Fatal(err)
	}
	openToken := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(openToken, []byte(apiToken), 0o644); err != nil {
		t.Fatal(err)
	}
	empty := t.TempDir()
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"bad output", []string{"--state-dir", dir, "-o", "xml"}, ExitBadInput, "--output"},
		{"two names", []string{"web", "api", "--state-dir", dir}, ExitBadInput, "accepts at most 1 arg"},
		{"unknown flag", []string{"--colour", "--state-dir", dir}, ExitBadInput, "unknown flag"},
		{"bad --api", []string{"--api", "localhost", "--state-dir", dir}, ExitBadInput, "--api"},
		{"missing rollout", []string{"nope", "--state-dir", dir}, ExitFailed, `rollout "nope": rollout not found`},
		{"no daemon", []string{"--state-dir", empty}, ExitFailed, "no pipit daemon found in " + empty + " (start one with `pipit up`)"},
		{"wrong token", []string{"--state-dir", dir, "--token-file", wrongToken}, ExitFailed, "rejected the token"},
		{"open token file", []string{"--state-dir", dir, "--token-file", openToken}, ExitFailed, "mode 0644"},
		{"nothing listening", []string{"--state-dir", dir, "--api", "127.0.0.1:1"}, ExitFailed, "cannot reach the pipit daemon"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := run(t, append([]string{"status"}, tt.args...)...)
			if code != tt.code || !strings.Contains(errOut, tt.want) {
				t.Fatalf("exit %d, stderr %q; want exit %d mentioning %q", code, errOut, tt.code, tt.want)
			}
			if out != "" {
				t.Fatalf("stdout %q, want nothing", out)
			}
			if strings.Contains(errOut, apiToken) {
				t.Fatal("stderr shows the token")
			}
		})
	}

	// --api and --token-file together need no state directory at all.
	code, out, errOut := run(t, "status", "--state-dir", empty, "--api", "http://"+strings.TrimSpace(string(addr)),
		"--token-file", filepath.Join(dir, controlapi.TokenFile))
	if code != ExitOK || !strings.Contains(out, "web") {
		t.Fatalf("explicit --api and --token-file: exit %d\n%s%s", code, out, errOut)
	}
}

func TestWatchLine(t *testing.T) {
	now := time.Date(2026, 7, 1, 9, 5, 0, 0, time.UTC)
	until := metav1.NewMicroTime(now.Add(4 * time.Minute))
	failed := []v1alpha1.MetricResult{{Name: "error-rate", Verdict: v1alpha1.VerdictSuccessful},
		{Name: "latency-p99", Verdict: v1alpha1.VerdictFailed, Message: "latency-p99 150ms is above the previous version's 100ms"}}
	cases := []struct {
		w    v1alpha1.PostPromotionWatch
		want string
	}{
		{v1alpha1.PostPromotionWatch{Until: &until, Checks: 6}, "after the promotion, until 09:09:00 (4m0s left); 6 checks of the new stable, none failed"},
		{v1alpha1.PostPromotionWatch{Until: &until, Checks: 10, Outcome: v1alpha1.WatchPassed}, "passed after 10 checks of the new stable"},
		{v1alpha1.PostPromotionWatch{Until: &until, Checks: 2, Outcome: v1alpha1.WatchFailed, LastResults: failed},
			"failed after 2 checks of the new stable: latency-p99 150ms is above the previous version's 100ms"},
		{v1alpha1.PostPromotionWatch{Until: &until, Checks: 3, Outcome: v1alpha1.WatchUndone}, "undone after 3 checks of the new stable"},
	}
	for _, tc := range cases {
		if got := watchLine(tc.w, now); got != tc.want {
			t.Errorf("watchLine(%s) = %q, want %q", tc.w.Outcome, got, tc.want)
		}
	}
}
