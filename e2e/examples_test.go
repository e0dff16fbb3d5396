package e2e

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pipit-dev/pipit/api/v1alpha1"
)

// TestProcessExampleRunsEndToEnd runs examples/process.yaml itself through
// `pipit up`, with its timings shortened and its address made free: the
// processes it names start, the load-test hook feeds the analysis, the
// approval gate waits for `pipit approve`, CPU and memory are checked, the
// Slack notifier (pointed at a local receiver through SLACK_WEBHOOK_URL, as
// the example expects) hears about it, and v2 is promoted.
func TestProcessExampleRunsEndToEnd(t *testing.T) {
	src, err := os.ReadFile("../examples/process.yaml")
	if err != nil {
		t.Fatal(err)
	}
	listen := freePort(t)
	doc := strings.NewReplacer(
		"127.0.0.1:8085", listen,
		"duration: 5m", "duration: 1s",
		"duration: 10m", "duration: 1s",
		"interval: 1m", "interval: 500ms",
		"duration: 30s}", "duration: 1s}",
		"period: 2s", "period: 200ms",
	).Replace(string(src))
	file := filepath.Join(t.TempDir(), "process.yaml")
	if err := os.WriteFile(file, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	var slack []string
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		slack = append(slack, string(b))
		mu.Unlock()
	}))
	defer receiver.Close()
	t.Setenv("SLACK_WEBHOOK_URL", receiver.URL)
	// The example runs `pipit sample-app`: the binary under test.
	t.Setenv("PATH", filepath.Dir(pipitBin)+string(os.PathListSeparator)+os.Getenv("PATH"))

	state := t.TempDir()
	d := startUp(t, file, state)
	d.name = "shop"
	d.waitFor(30*time.Second, "v1 serving", func(st v1alpha1.RolloutStatus) bool { return st.Phase == v1alpha1.PhaseIdle })
	// v2 is described as the example's comment says: a file like the
	// stable's process block.
	v2 := filepath.Join(t.TempDir(), "v2.yaml")
	desc := "command: pipit\nargs: [sample-app, --listen, \"127.0.0.1:{{ .Port }}\", --version, \"{{ .Version }}\"]\n" +
		"replicas: 2\nreadiness: {path: /health, period: 200ms}\nmemoryLimitBytes: 268435456\n"
	if err := os.WriteFile(v2, []byte(desc), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := pipit(t, 15*time.Second, "deploy", "shop", "--version", "v2", "--from", v2, "--state-dir", state); r.code != 0 {
		t.Fatalf("deploy: exit %d: %s%s", r.code, r.stdout, r.stderr)
	}
	d.waitFor(60*time.Second, "the approval gate", func(st v1alpha1.RolloutStatus) bool { return st.Phase == v1alpha1.PhaseAwaitingDecision })
	if r := pipit(t, 15*time.Second, "approve", "shop", "--reason", "QA signed off", "--state-dir", state); r.code != 0 {
		t.Fatalf("approve: exit %d: %s", r.code, r.stderr)
	}
	st := d.waitFor(60*time.Second, "Succeeded", func(st v1alpha1.RolloutStatus) bool { return st.Phase.Terminal() })
	if st.Phase != v1alpha1.PhaseSucceeded || st.Stable.Version != "v2" {
		t.Fatalf("ended %s (%s)", st.Phase, st.Message)
	}
	names := map[string]bool{}
	for _, r := range st.Analysis.LastResults {
		names[r.Name] = true
	}
	for _, want := range []string{"cpu-usage", "memory-usage", "webhook/load"} {
		if !names[want] {
			t.Errorf("last check lacks %s: %+v", want, st.Analysis.LastResults)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		all := strings.Join(slack, "\n")
		mu.Unlock()
		if strings.Contains(all, "v2 is now the stable version") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("slack never heard of the promotion; got:\n%s", all)
		}
		time.Sleep(50 * time.Millisecond)
	}
	d.stopGracefully(20 * time.Second)
}

// failingServer passes its health checks and answers every other request
// with a 500: a canary that starts, then breaks under traffic.
func failingServer(t testing.TB) string {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			return
		}
		http.Error(w, "broken", http.StatusInternalServerError)
	}))
	t.Cleanup(s.Close)
	return s.URL
}

// TestPresetExampleRunsEndToEnd runs examples/preset.yaml through `pipit
// up` under load, its preset given the custom canary form with the same
// 10% and a soak of seconds (the named one soaks five minutes) and its
// checks made faster: `pipit status` shows the expanded steps, and the
// history walks them to promotion, or, with a canary answering 500s,
// rolls back at 10% before the soak ends.
func TestPresetExampleRunsEndToEnd(t *testing.T) {
	for _, tc := range []struct {
		name   string
		canary func(testing.TB) string
		phase  v1alpha1.Phase
		stable string
	}{
		{"healthy canary is promoted", func(t testing.TB) string { return versionServer(t, "v3.2.0") }, v1alpha1.PhaseSucceeded, "v3.2.0"},
		{"failing canary rolls back", failingServer, v1alpha1.PhaseRolledBack, "v3.1.0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			listen := freePort(t)
			file := example(t, "preset.yaml",
				"127.0.0.1:8086", listen,
				"http://127.0.0.1:9061", versionServer(t, "v3.1.0"),
				"http://127.0.0.1:9062", tc.canary(t),
				"preset: CodeDeployDefault.ECSCanary10Percent5Minutes", "preset: {canary: {percent: 10, interval: 4s}}",
				"interval: 1m", "interval: 500ms")
			d := startUp(t, file, t.TempDir())
			d.name = "payments"
			if steps := d.status().Steps; !slices.Equal(steps, []string{"setWeight 10%", "pause 4s"}) {
				t.Errorf("status steps %q, want the preset expanded", steps)
			}
			stop := load(t, listen, 100)
			start := time.Now()
			st := d.waitFor(60*time.Second, string(tc.phase), func(st v1alpha1.RolloutStatus) bool { return st.Phase.Terminal() })
			stop()
			if st.Phase != tc.phase || st.Stable.Version != tc.stable {
				t.Fatalf("ended %s with stable %s (%s), want %s with %s", st.Phase, st.Stable.Version, st.Message, tc.phase, tc.stable)
			}
			if took := time.Since(start); tc.phase == v1alpha1.PhaseRolledBack && took > 4*time.Second {
				t.Errorf("rolled back after %s, later than the 4s soak", took)
			}
			var walked []string
			for _, e := range d.history() {
				if e.Reason == "WeightChanged" || e.Reason == "PauseEnded" {
					walked = append(walked, e.Reason+" "+e.Weight.String())
				}
			}
			want := map[v1alpha1.Phase][]string{
				v1alpha1.PhaseSucceeded:  {"WeightChanged 10%", "PauseEnded 10%"},
				v1alpha1.PhaseRolledBack: {"WeightChanged 10%"},
			}[tc.phase]
			if !slices.Equal(walked, want) {
				t.Errorf("history walked %q, want %q", walked, want)
			}
		})
	}
}
