package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var convertReference = filepath.Join("..", "..", "..", "shared", "reference", "manifests")

// TestConvertThenValidate converts a real Flagger Canary and feeds the
// output to `pipit validate -`, as a user's pipeline would.
func TestConvertThenValidate(t *testing.T) {
	var converted, notes bytes.Buffer
	code := Execute(context.Background(), []string{"convert", "--prometheus-url", "http://prom.test:9090",
		filepath.Join(convertReference, "flagger", "nginx-canary.yaml")}, &converted, &notes)
	if code != ExitOK {
		t.Fatalf("convert: exit %d\n%s", code, &notes)
	}
	for _, want := range []string{"Canary podinfo: spec.ingressRef: pipit has no NGINX ingress router", "MetricTemplate latency: not used"} {
		if !strings.Contains(notes.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, &notes)
		}
	}
	if !strings.Contains(converted.String(), "address: http://prom.test:9090") {
		t.Errorf("--prometheus-url is not the built-in metrics' address:\n%s", &converted)
	}
	var stdout, stderr bytes.Buffer
	root := NewRoot(&stdout, &stderr)
	root.SetArgs([]string{"validate", "-"})
	root.SetIn(&converted)
	if err := root.ExecuteContext(context.Background()); err != nil {
		t.Fatalf("validate: %v\n%s", err, &stdout)
	}
	if stdout.String() != "<stdin>: ok (1 rollout)\n" {
		t.Errorf("validate: %q", &stdout)
	}
}

// TestConvertStdinAndEmbeddedTemplate reads an Argo Rollout from standard
// input; its pod template comes out as a Deployment beside the rollout.
func TestConvertStdinAndEmbeddedTemplate(t *testing.T) {
	in, err := os.ReadFile(filepath.Join(convertReference, "argo", "rollout-experiment-step.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	root := NewRoot(&stdout, &stderr)
	root.SetArgs([]string{"convert", "-"})
	root.SetIn(bytes.NewReader(in))
	if err := root.ExecuteContext(context.Background()); err != nil {
		t.Fatalf("%v\n%s", err, &stderr)
	}
	out := stdout.String()
	if !strings.Contains(out, "kind: Rollout") || !strings.Contains(out, "---\napiVersion: apps/v1\nkind: Deployment") {
		t.Errorf("want a Rollout and a Deployment:\n%s", out)
	}
	if !strings.Contains(stderr.String(), "<stdin>:38: Rollout rollout-experiment-step: spec.strategy.canary.steps[1].experiment: pipit runs no experiments") {
		t.Errorf("stderr:\n%s", &stderr)
	}
}

// convertRefusals are inputs pipit convert refuses with exit 2, and what
// it says.
var convertRefusals = []struct {
	name, input, want string
}{
	{"neither", "apiVersion: v1\nkind: Service\nmetadata: {name: web}\n", "no Flagger Canary (flagger.app/v1beta1) or Argo Rollouts Rollout"},
	{"bad YAML", "apiVersion: flagger.app/v1beta1\nkind: Canary\nmetadata: {name: web\n", "in.yaml:2: invalid YAML"},
	{"DaemonSet", "apiVersion: flagger.app/v1beta1\nkind: Canary\nmetadata: {name: agent}\nspec:\n  targetRef: {kind: DaemonSet, name: agent}\n", `in.yaml:5: Canary agent: spec.targetRef.kind: is "DaemonSet"`},
}

func TestConvertRefuses(t *testing.T) {
	for _, tc := range convertRefusals {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "in.yaml")
			if err := os.WriteFile(path, []byte(tc.input), 0o600); err != nil {
				t.Fatal(err)
			}
			var stdout, stderr bytes.Buffer
			if code := Execute(context.Background(), []string{"convert", path}, &stdout, &stderr); code != ExitBadInput {
				t.Errorf("exit %d, want %d", code, ExitBadInput)
			}
			if !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("stderr lacks %q:\n%s", tc.want, &stderr)
			}
		})
	}
}
