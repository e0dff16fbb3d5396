package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestValidateExamples(t *testing.T) {
	files, _ := filepath.Glob("../examples/*.yaml")
	if len(files) == 0 {
		t.Fatal("no examples")
	}
	r := pipit(t, 30*time.Second, append([]string{"validate"}, files...)...)
	if r.code != 0 {
		t.Fatalf("pipit validate examples: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

func TestValidateTypoNamesFileLineAndField(t *testing.T) {
	path := filepath.Join(t.TempDir(), "typo.yaml")
	doc := "apiVersion: pipit.dev/v1alpha1\nkind: Rollout\nmetadata: {name: web}\nspec:\n  service:\n    listen: 127.0.0.1:8080\n    stable: {url: http://127.0.0.1:9001}\n  strategy:\n    stepWieght: 5\n"
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	r := pipit(t, 30*time.Second, "validate", path)
	out := r.stdout + r.stderr
	if r.code != 2 || !strings.Contains(out, path+":9") || !strings.Contains(out, "stepWieght") {
		t.Fatalf("exit %d, output:\n%s\nwant exit 2 naming %s:9 and the field", r.code, out, path)
	}
}

func TestUnknownCommandIsBadInput(t *testing.T) {
	if r := pipit(t, 10*time.Second, "frobnicate"); r.code != 2 {
		t.Errorf("exit %d, want 2", r.code)
	}
	if r := pipit(t, 10*time.Second, "up"); r.code != 2 {
		t.Errorf("pipit up without -f: exit %d, want 2", r.code)
	}
}

func TestDemoPromotes(t *testing.T) {
	start := time.Now()
	r := pipit(t, 120*time.Second, "demo")
	if r.code != 0 || !strings.Contains(r.stdout, "Succeeded in") || !strings.Contains(r.stdout, "v2 is now the stable version") {
		t.Fatalf("pipit demo: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	t.Logf("demo took %s", time.Since(start))
}

// The blue-green demo switches all users to v2 at once after its checks;
// faulty, it rolls back before any user got an error.
func TestBlueGreenDemo(t *testing.T) {
	r := pipit(t, 120*time.Second, "demo", "--strategy", "blue-green")
	if r.code != 0 || !strings.Contains(r.stdout, "open on its preview") || !strings.Contains(r.stdout, "Switched all traffic from v1 to v2 at once") ||
		!strings.Contains(r.stdout, "v2 is now the stable version") {
		t.Fatalf("pipit demo --strategy blue-green: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	r = pipit(t, 120*time.Second, "demo", "--strategy", "blue-green", "--faulty")
	if r.code != 0 || !strings.Contains(r.stdout, "RolledBack after") || strings.Contains(r.stdout, "Switched all traffic") ||
		strings.Contains(r.stdout, "500×") {
		t.Fatalf("pipit demo --strategy blue-green --faulty: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if r := pipit(t, 10*time.Second, "demo", "--strategy", "purple"); r.code != 2 || !strings.Contains(r.stderr, "unknown strategy") {
		t.Errorf("demo --strategy purple: exit %d\n%s", r.code, r.stderr)
	}
}

// The experiment demo's users buy more often on v2, which wins and is
// promoted with its numbers shown; faulty, v2 converts worse and loses.
func TestExperimentDemo(t *testing.T) {
	r := pipit(t, 120*time.Second, "demo", "--strategy", "experiment")
	if r.code != 0 || !strings.Contains(r.stdout, "Experiment concluded: winner treatment (v2) — conversion on checkout: control ") ||
		!strings.Contains(r.stdout, "experiment: winner treatment (v2)") || !strings.Contains(r.stdout, "v2 is now the stable version") {
		t.Fatalf("pipit demo --strategy experiment: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	r = pipit(t, 120*time.Second, "demo", "--strategy", "experiment", "--faulty")
	if r.code != 0 || !strings.Contains(r.stdout, "RolledBack after") || !strings.Contains(r.stdout, "experiment: winner control (v1)") ||
		!strings.Contains(r.stdout, "failing metric: conversion-rate:checkout") {
		t.Fatalf("pipit demo --strategy experiment --faulty: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
}

func TestFaultyDemoRollsBackNamingTheMetric(t *testing.T) {
	r := pipit(t, 120*time.Second, "demo", "--faulty")
	if r.code != 0 || !strings.Contains(r.stdout, "RolledBack after") || !strings.Contains(r.stdout, "failing metric: ") {
		t.Fatalf("pipit demo --faulty: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
}
