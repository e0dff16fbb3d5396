package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pipit-dev/pipit/internal/controlapi"
)

// writeGatedRollout writes a rollout of web on listen, stable at
// stableURL, whose checks every 500ms need a success rate of 99% or more.
func writeGatedRollout(t testing.TB, listen, stableURL string) string {
	t.Helper()
	doc := fmt.Sprintf(`apiVersion: pipit.dev/v1alpha1
kind: Rollout
metadata:
  name: web
spec:
  service:
    listen: %s
    stable: {url: %q, version: v1}
    healthCheck: {interval: 100ms, timeout: 2s}
  strategy:
    steps:
    - setWeight: 20
    - pause: {duration: 2s}
    - setWeight: 50
    - pause: {duration: 1s}
  analysis:
    interval: 500ms
    metrics:
    - name: request-success-rate
      thresholdRange: {min: 99}
`, listen, stableURL)
	path := filepath.Join(t.TempDir(), "rollout.yaml")
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestDeployWaitGatesCI: `pipit deploy --wait` under load exits 0 once a
// healthy canary is promoted, and 1 once a canary answering 500s is rolled
// back, as a CI job reads it; the daemon logs the rollback at WARN.
func TestDeployWaitGatesCI(t *testing.T) {
	for _, tc := range []struct {
		name   string
		canary func(testing.TB) string
		code   int
		ended  string
		warned string
	}{
		{"promoted", func(t testing.TB) string { return versionServer(t, "v2") }, 0, "web  Succeeded", ""},
		{"rolled back", failingServer, 1, "rollout web ended RolledBack", `level=WARN msg="rollout event" rollout=web reason=RolledBack`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			listen := freePort(t)
			state := t.TempDir()
			d := startUp(t, writeGatedRollout(t, listen, versionServer(t, "v1")), state)
			waitAnswers(t, listen)
			stop := load(t, listen, 100)
			defer stop()
			r := pipit(t, 60*time.Second, "deploy", "web", "--canary", tc.canary(t), "--version", "v2",
				"--wait", "--timeout", "45s", "--state-dir", state)
			if r.code != tc.code || !strings.Contains(r.stdout+r.stderr, tc.ended) {
				t.Fatalf("deploy --wait: exit %d, want %d mentioning %q\nstdout:\n%s\nstderr:\n%s", r.code, tc.code, tc.ended, r.stdout, r.stderr)
			}
			if !strings.Contains(d.output(), tc.warned) {
				t.Errorf("the daemon's log lacks %q:\n%s", tc.warned, d.output())
			}
		})
	}
}

// TestGetWatchTimeout: a watch on a rollout that does not end in time
// exits 124, as timeout(1) does; with nothing in flight it says it waits
// for the next rollout.
func TestGetWatchTimeout(t *testing.T) {
	state := t.TempDir()
	startUp(t, writeGatedRollout(t, freePort(t), versionServer(t, "v1")), state)
	start := time.Now()
	r := pipit(t, 30*time.Second, "get", "web", "--watch", "--timeout", "1s", "--state-dir", state)
	if r.code != 124 || !strings.Contains(r.stderr, "did not end within 1s") || !strings.Contains(r.stderr, "no rollout in flight (Idle)") {
		t.Fatalf("get --watch --timeout 1s: exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	if took := time.Since(start); took < time.Second {
		t.Errorf("timed out after %s, before the 1s", took)
	}
}

// TestUpLogsJSONEvents: `pipit up --log-format json` writes JSON lines,
// among them a rollout event at INFO, and never the API token.
func TestUpLogsJSONEvents(t *testing.T) {
	state := t.TempDir()
	listen := freePort(t)
	file := writeGatedRollout(t, listen, versionServer(t, "v1"))
	cmd := exec.Command(pipitBin, "up", "-f", file, "--state-dir", state, "--api", "127.0.0.1:0", "--log-format", "json")
	d := runDaemon(t, cmd, state, file)
	t.Cleanup(func() { d.cmd.Process.Kill(); d.cmd.Wait() })
	waitAnswers(t, listen)
	if r := pipit(t, 10*time.Second, "deploy", "web", "--canary", versionServer(t, "v2"), "--state-dir", state); r.code != 0 {
		t.Fatalf("deploy: exit %d: %s", r.code, r.stderr)
	}
	token, err := os.ReadFile(filepath.Join(state, controlapi.TokenFile))
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		out := d.output()
		if strings.Contains(out, strings.TrimSpace(string(token))) {
			t.Fatalf("the log holds the API token:\n%s", out)
		}
		if started := rolloutEvent(t, out, "Started"); started != nil {
			if started["level"] != "INFO" || started["rollout"] != "web" {
				t.Fatalf("the Started event: %v", started)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no rollout event logged as JSON:\n%s", out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// rolloutEvent finds the JSON line logging the rollout event reason in
// out, whose lines are either pipit up's own sayings or JSON objects.
func rolloutEvent(t testing.TB, out, reason string) map[string]any {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "time=") {
			t.Fatalf("a log line is text, not JSON: %s", line)
		}
		if !strings.HasPrefix(line, "{") {
			continue
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("a log line is not JSON: %v\n%s", err, line)
		}
		if rec["msg"] == "rollout event" && rec["reason"] == reason {
			return rec
		}
	}
	return nil
}
