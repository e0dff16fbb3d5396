package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pipit-dev/pipit/internal/lint"
)

// lintExitCases are pipit lint's exit codes for the rule files of
// internal/lint/testdata and the examples.
var lintExitCases = []struct {
	name string
	args []string
	code int
}{
	{"a warning fails by default", []string{"weight-jump.yaml"}, ExitFailed},
	{"a wider step passes", []string{"--max-step", "95", "weight-jump.yaml"}, ExitOK},
	{"an info passes by default", []string{"no-rollback-notification.yaml"}, ExitOK},
	{"an info fails on info", []string{"--fail-on", "info", "no-rollback-notification.yaml"}, ExitFailed},
	{"a warning passes on error", []string{"--fail-on", "error", "weight-jump.yaml"}, ExitOK},
	{"an unknown severity", []string{"--fail-on", "fatal", "weight-jump.yaml"}, ExitBadInput},
	{"an unknown format", []string{"-o", "xml", "weight-jump.yaml"}, ExitBadInput},
	{"a step out of range", []string{"--max-step", "0", "weight-jump.yaml"}, ExitBadInput},
	{"a missing file", []string{"weight-jump.yaml", "missing.yaml"}, ExitBadInput},
	{"no file", nil, ExitBadInput},
}

func TestLintExitCodes(t *testing.T) {
	for _, tc := range lintExitCases {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"lint"}
			for _, a := range tc.args {
				if strings.HasSuffix(a, ".yaml") {
					a = filepath.Join("../lint/testdata", a)
				}
				args = append(args, a)
			}
			var stdout, stderr bytes.Buffer
			if code := Execute(context.Background(), args, &stdout, &stderr); code != tc.code {
				t.Errorf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.code, &stdout, &stderr)
			}
		})
	}
}

func TestLintExamplesPass(t *testing.T) {
	files, err := filepath.Glob("../../examples/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples: %v", err)
	}
	var stdout, stderr bytes.Buffer
	if code := Execute(context.Background(), append([]string{"lint"}, files...), &stdout, &stderr); code != ExitOK {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, &stdout, &stderr)
	}
	if !strings.Contains(stdout.String(), "0 error, 0 warning,") {
		t.Errorf("stdout:\n%s", &stdout)
	}
}

func TestLintJSON(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := Execute(context.Background(), []string{"lint", "-o", "json", "../lint/testdata/first-step-too-big.yaml"}, &stdout, &stderr)
	if code != ExitFailed {
		t.Fatalf("exit %d\nstderr:\n%s", code, &stderr)
	}
	var report struct {
		Rollouts int `json:"rollouts"`
		Findings []struct {
			Rule, Severity, File, Field, Problem, Fix string
			Line, Column                              int
		} `json:"findings"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &report); err != nil {
		t.Fatalf("%v\n%s", err, &stdout)
	}
	if report.Rollouts != 1 || len(report.Findings) != 1 {
		t.Fatalf("report: %+v", report)
	}
	f := report.Findings[0]
	if f.Rule != "first-step-too-big" || f.Severity != lint.Warning.String() || f.Line != 9 || f.Column != 9 ||
		f.Field != "spec.strategy.steps[0].setWeight" || f.Problem == "" || f.Fix == "" {
		t.Errorf("finding: %+v", f)
	}
}

// TestValidateStdin: "-" reads standard input, and documents of other
// APIs are skipped with a note.
func TestValidateStdin(t *testing.T) {
	const stream = `apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
---
apiVersion: pipit.dev/v1alpha1
kind: Rollout
metadata: {name: web}
spec:
  targetRef: {name: web}
  strategy: {stepWeight: 10}
`
	var stdout, stderr bytes.Buffer
	root := NewRoot(&stdout, &stderr)
	root.SetArgs([]string{"validate", "-"})
	root.SetIn(strings.NewReader(stream))
	if err := root.ExecuteContext(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := stdout.String(); got != "<stdin>: ok (1 rollout)\n" {
		t.Errorf("stdout = %q", got)
	}
	if got := stderr.String(); got != "note: skipping <stdin>:1: Deployment web (apps/v1): not a pipit rollout\n" {
		t.Errorf("stderr = %q", got)
	}
}
