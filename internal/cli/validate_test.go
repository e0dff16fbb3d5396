package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestValidateExamples(t *testing.T) {
	files, err := filepath.Glob("../../examples/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples: %v", err)
	}
	var stdout, stderr bytes.Buffer
	code := Execute(context.Background(), append([]string{"validate"}, files...), &stdout, &stderr)
	if code != ExitOK {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, &stdout, &stderr)
	}
	for _, f := range files {
		want := f + ": ok (1 rollout)\n"
		if filepath.Base(f) == "metric-templates.yaml" {
			want = f + ": ok (1 rollout, 1 metric template)\n"
		}
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("stdout lacks %q:\n%s", want, &stdout)
		}
	}
}

// TestValidateTemplatesAcrossFiles: a rollout's metric template may be in
// another file of the same command; one that is in none is named with
// the rollout's file, line and field.
func TestValidateTemplatesAcrossFiles(t *testing.T) {
	dir := t.TempDir()
	templates, rollout := filepath.Join(dir, "templates.yaml"), filepath.Join(dir, "web.yaml")
	for path, data := range map[string]string{
		templates: `apiVersion: pipit.dev/v1alpha1
kind: RolloutMetricTemplate
metadata: {name: errors}
spec:
  provider: {prometheus: {address: "http://127.0.0.1:9090", query: "sum(errors{job=\"{{ .Args.job }}\"})"}}
`,
		rollout: `apiVersion: pipit.dev/v1alpha1
kind: Rollout
metadata: {name: web}
spec:
  service: {listen: "127.0.0.1:8080", stable: {url: "http://127.0.0.1:9001"}}
  strategy: {stepWeight: 10}
  analysis:
    metrics:
      - {name: errors, templateRef: {name: errors}, args: {job: web}}
`,
	} {
		if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var stdout, stderr bytes.Buffer
	if code := Execute(context.Background(), []string{"validate", templates, rollout}, &stdout, &stderr); code != ExitOK {
		t.Fatalf("exit %d\n%s%s", code, &stdout, &stderr)
	}
	if want := templates + ": ok (0 rollouts, 1 metric template)\n" + rollout + ": ok (1 rollout)\n"; stdout.String() != want {
		t.Errorf("stdout:\n%s\nwant:\n%s", &stdout, want)
	}
	stdout.Reset()
	if code := Execute(context.Background(), []string{"validate", rollout}, &stdout, &stderr); code != ExitBadInput {
		t.Errorf("without the templates: exit %d, want %d", code, ExitBadInput)
	}
	want := rollout + `:9:38: spec.analysis.metrics[0].templateRef.name: there is no RolloutMetricTemplate "errors" in namespace "default" in the files given` + "\n"
	if stdout.String() != want {
		t.Errorf("stdout:\n%s\nwant:\n%s", &stdout, want)
	}
}

func TestValidateReportsInvalidFiles(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	missing := filepath.Join(dir, "missing.yaml")
	const rollout = `apiVersion: pipit.dev/v1alpha1
kind: Rollout
metadata: {name: web}
spec:
  service: {listen: "127.0.0.1:8080", stable: {url: "http://127.0.0.1:9001"}}
  strategy: {stepWeight: 10}
`
	two := rollout + "---\n" + strings.Replace(rollout, "name: web", "name: api", 1)
	typo := strings.Replace(rollout, "stepWeight", "stepweight", 1) + "  decision: auto\n"
	for path, data := range map[string]string{good: two, bad: typo} {
		if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	var stdout, stderr bytes.Buffer
	code := Execute(context.Background(), []string{"validate", good, bad, missing}, &stdout, &stderr)
	if code != ExitBadInput {
		t.Errorf("exit %d, want %d", code, ExitBadInput)
	}
	want := good + ": ok (2 rollouts)\n" +
		bad + ":6:3: spec.strategy: needs steps, a preset, blueGreen, an experiment, or the shorthand stepWeight or stepWeights\n" +
		bad + `:6:14: spec.strategy.stepweight: unknown field "stepweight", did you mean "stepWeight"?` + "\n" +
		bad + `:7:3: spec.decision: must be automatic, manual or hybrid, not "auto"` + "\n" +
		missing + ": no such file or directory\n"
	if stdout.String() != want {
		t.Errorf("stdout:\n%s\nwant:\n%s", &stdout, want)
	}
	if got := stderr.String(); got != "Error: 2 of 3 files invalid\n" {
		t.Errorf("stderr = %q", got)
	}
}

func TestValidateNeedsAFile(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := Execute(context.Background(), []string{"validate"}, &stdout, &stderr); code != ExitBadInput {
		t.Errorf("exit %d, want %d", code, ExitBadInput)
	}
	if !strings.Contains(stderr.String(), "requires at least 1 arg") {
		t.Errorf("stderr = %q", &stderr)
	}
}
