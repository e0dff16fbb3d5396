package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestLintExamplesExitZero: the examples lint without warnings.
func TestLintExamplesExitZero(t *testing.T) {
	files, err := filepath.Glob("../examples/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples: %v", err)
	}
	r := pipit(t, 30*time.Second, append([]string{"lint"}, files...)...)
	if r.code != 0 || !strings.Contains(r.stdout, " 0 error, 0 warning, ") {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
}

// TestLintExitCodes: 1 for a warning, 0 when --fail-on is above it, 2
// for an invalid file.
func TestLintExitCodes(t *testing.T) {
	jump := "../internal/lint/testdata/weight-jump.yaml"
	if r := pipit(t, 30*time.Second, "lint", jump); r.code != 1 ||
		!strings.Contains(r.stdout, "weight-jump.yaml:11:9: warning: weight-jump: spec.strategy.steps[2].setWeight: the weight jumps from 5% to 100%") ||
		!strings.Contains(r.stderr, "Error: 2 findings at or above warning") {
		t.Errorf("warning: exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	if r := pipit(t, 30*time.Second, "lint", "--fail-on", "error", jump); r.code != 0 {
		t.Errorf("--fail-on error: exit %d\nstderr:\n%s", r.code, r.stderr)
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("apiVersion: pipit.dev/v1alpha1\nkind: Rollout\nmetadata: {name: x}\nspec: {strategy: {stepweight: 5}}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := pipit(t, 30*time.Second, "lint", bad); r.code != 2 || !strings.Contains(r.stderr, `unknown field "stepweight"`) {
		t.Errorf("invalid file: exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
}

// TestLintAndValidateStdin: a manifest stream on standard input, as from
// kustomize build; the Deployment is skipped with a note but still read
// by no-readiness, and validate accepts the same stream.
func TestLintAndValidateStdin(t *testing.T) {
	stream, err := os.ReadFile("../internal/lint/testdata/no-readiness.yaml")
	if err != nil {
		t.Fatal(err)
	}
	r := pipitWithInput(t, 30*time.Second, string(stream), "lint", "-o", "json", "-")
	var report struct {
		Findings []struct{ Rule, File, Problem string } `json:"findings"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &report); err != nil || r.code != 1 || len(report.Findings) != 3 ||
		!strings.Contains(r.stderr, "note: skipping <stdin>:30: Deployment web (apps/v1): not a pipit rollout") {
		t.Fatalf("lint -: exit %d, %v\nstdout:\n%s\nstderr:\n%s", r.code, err, r.stdout, r.stderr)
	}
	if f := report.Findings[1]; f.Rule != "no-readiness" || f.File != "<stdin>" || !strings.HasPrefix(f.Problem, "container app of Deployment web") {
		t.Errorf("finding: %+v", f)
	}
	r = pipitWithInput(t, 30*time.Second, string(stream), "validate", "-")
	if r.code != 0 || r.stdout != "<stdin>: ok (3 rollouts)\n" || !strings.Contains(r.stderr, "note: skipping <stdin>:43: Service web (v1)") {
		t.Errorf("validate -: exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
}
