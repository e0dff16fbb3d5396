package lint

import (
	"flag"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pipit-dev/pipit/internal/spec"
)

var update = flag.Bool("update", false, "rewrite the .golden files of testdata")

// TestRulesGolden lints every file of testdata, named after the rule it
// triggers, and compares the findings with the file's .golden twin.
func TestRulesGolden(t *testing.T) {
	for _, rule := range Rules() {
		t.Run(rule.Name, func(t *testing.T) {
			file := filepath.Join("testdata", rule.Name+".yaml")
			findings := lintFile(t, file)
			triggered := false
			var got strings.Builder
			for _, f := range findings {
				triggered = triggered || f.Rule == rule.Name
				got.WriteString(f.String() + "\n")
			}
			if !triggered {
				t.Errorf("%s does not trigger %s:\n%s", file, rule.Name, &got)
			}
			golden := strings.TrimSuffix(file, ".yaml") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got.String()), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if got.String() != string(want) {
				t.Errorf("findings of %s:\n%s\nwant:\n%s", file, &got, want)
			}
		})
	}
}

// TestExamplesLintClean: the examples are the good way to write a
// rollout; the only finding allowed is the info that nobody is notified,
// which most examples leave out to stay short.
func TestExamplesLintClean(t *testing.T) {
	files, err := filepath.Glob("../../examples/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples: %v", err)
	}
	for _, file := range files {
		for _, f := range lintFile(t, file) {
			if f.Rule != "no-rollback-notification" {
				t.Errorf("%v", f)
			}
		}
	}
}

// TestPresetIsExemptFromWeightRules: a preset's jumps are its point (an
// all-at-once switch included), so the weight rules say nothing of it.
func TestPresetIsExemptFromWeightRules(t *testing.T) {
	src, err := spec.ReadSource(filepath.Join("testdata", "preset-exempt.yaml"), nil)
	if err != nil {
		t.Fatal(err)
	}
	findings, err := Lint(src, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range findings {
		t.Errorf("a preset got a finding: %v", f)
	}
}

func TestMaxStepOption(t *testing.T) {
	src, err := spec.ReadSource(filepath.Join("testdata", "weight-jump.yaml"), nil)
	if err != nil {
		t.Fatal(err)
	}
	count := func(opts Options) (n int) {
		findings, err := Lint(src, opts)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range findings {
			if f.Rule == "weight-jump" {
				n++
			}
		}
		return n
	}
	// 5 → 100 (95 points) and 10 → promotion (90 points).
	if n := count(Options{}); n != 2 {
		t.Errorf("default max step: %d weight jumps, want 2", n)
	}
	if n := count(Options{MaxStep: 92}); n != 1 {
		t.Errorf("max step 92: %d weight jumps, want 1", n)
	}
	if n := count(Options{MaxStep: 95}); n != 0 {
		t.Errorf("max step 95: %d weight jumps, want 0", n)
	}
}

// TestDetectableIncrease checks the power calculation against a value
// worked out by hand: 10,000 requests on each side at a 1% baseline give
// 2.486 × √(0.0099 × 0.0002) = 0.3498 percentage points.
func TestDetectableIncrease(t *testing.T) {
	if got := DetectableIncrease(10000, 10000); math.Abs(got-0.003498) > 1e-5 {
		t.Errorf("DetectableIncrease(10000, 10000) = %f, want 0.003498", got)
	}
	if got := DetectableIncrease(0, 1000); !math.IsInf(got, 1) {
		t.Errorf("no canary request: %f, want +Inf", got)
	}
	if DetectableIncrease(100, 1e6) <= DetectableIncrease(1000, 1e6) {
		t.Error("fewer requests should detect less")
	}
}

func TestParseSeverity(t *testing.T) {
	for _, s := range []Severity{Info, Warning, Error} {
		if got, err := ParseSeverity(s.String()); err != nil || got != s {
			t.Errorf("ParseSeverity(%q) = %v, %v", s, got, err)
		}
	}
	if _, err := ParseSeverity("fatal"); err == nil || !strings.Contains(err.Error(), `not "fatal"`) {
		t.Errorf("ParseSeverity(fatal) error = %v", err)
	}
}

func lintFile(t *testing.T, file string) []Finding {
	t.Helper()
	src, err := spec.ReadSource(file, nil)
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	findings, err := Lint(src, Options{})
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return findings
}
