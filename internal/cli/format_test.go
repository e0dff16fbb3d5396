package cli

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/controlapi"
)

func TestStepLabel(t *testing.T) {
	steps := []string{"setWeight 5%", "pause 10m0s", "setWeight 50%"}
	tests := []struct {
		phase v1alpha1.Phase
		steps []string
		step  int32
		want  string
	}{
		{v1alpha1.PhaseProgressing, steps, 0, "1/3 setWeight 5%"},
		{v1alpha1.PhasePaused, steps, 1, "2/3 pause 10m0s"},
		{v1alpha1.PhasePromoting, steps, 3, "3/3 done"},
		// Promoted twice past the last step by an older pipit, or a plan a
		// reload shortened: never more steps than there are.
		{v1alpha1.PhaseProgressing, steps, 7, "3/3 done"},
		{v1alpha1.PhaseRolledBack, steps, 2, "3/3 setWeight 50%"},
		{v1alpha1.PhaseIdle, steps, 0, "-"},
		{"", steps, 0, "-"},
		{v1alpha1.PhaseProgressing, nil, 0, "-"},
	}
	for _, tt := range tests {
		v := controlapi.RolloutView{Steps: tt.steps, Status: v1alpha1.RolloutStatus{Phase: tt.phase, CurrentStep: tt.step}}
		if got := stepLabel(v); got != tt.want {
			t.Errorf("stepLabel(%s, step %d) = %q, want %q", tt.phase, tt.step, got, tt.want)
		}
	}
}

func TestAgo(t *testing.T) {
	now := time.Date(2026, 7, 1, 9, 0, 0, 0, time.UTC)
	tests := []struct {
		d    time.Duration
		want string
	}{
		{-5 * time.Second, "just now"},
		{300 * time.Millisecond, "just now"},
		{45 * time.Second, "45s ago"},
		{2*time.Minute + 59*time.Second, "2m ago"},
		{3 * time.Hour, "3h ago"},
		{47 * time.Hour, "47h ago"},
		{72 * time.Hour, "3d ago"},
	}
	for _, tt := range tests {
		if got := ago(now, now.Add(-tt.d)); got != tt.want {
			t.Errorf("ago(%v) = %q, want %q", tt.d, got, tt.want)
		}
	}
}

func TestProgressBar(t *testing.T) {
	tests := []struct {
		w    v1alpha1.Percent
		want string
	}{
		{0, "[....................] 0%"},
		{2500, "[....................] 2.5%"},
		{5000, "[#...................] 5%"},
		{25000, "[#####...............] 25%"},
		{99999, "[###################.] 99.999%"},
		{v1alpha1.FullWeight, "[####################] 100%"},
		{-1, "[....................] 0%"},
		{200000, "[####################] 100%"},
	}
	for _, tt := range tests {
		if got := progressBar(tt.w, 20); got != tt.want {
			t.Errorf("progressBar(%d) = %q, want %q", tt.w, got, tt.want)
		}
	}
}

func TestNumbers(t *testing.T) {
	tests := []struct{ got, want string }{
		{valueIn(nil, "ms"), "-"},
		{valueIn(fptr(7.25), ""), "7.25"},
		{valueIn(fptr(7.25), "ms"), "7.25ms"},
		{valueIn(fptr(1.0/3), "%"), "0.333%"},
		{valueIn(fptr(500), "requests"), "500 requests"},
		{percentValue(fptr(99.956)), "99.96%"},
		{percentValue(fptr(100)), "100%"},
		{percentValue(nil), "-"},
		{millis(fptr(0.354)), "0.35ms"},
		{millis(fptr(45.26)), "45.3ms"},
		{millis(fptr(120.4)), "120ms"},
		{millis(fptr(1520)), "1.52s"},
		{millis(nil), "-"},
		{rangeLabel(&v1alpha1.ThresholdRange{Min: fptr(99)}, "%"), "min 99%"},
		{rangeLabel(&v1alpha1.ThresholdRange{Max: fptr(0.5)}, ""), "max 0.5"},
		{rangeLabel(&v1alpha1.ThresholdRange{Min: fptr(1), Max: fptr(5)}, "req/s"), "1 req/s to 5 req/s"},
		{rangeLabel(nil, "ms"), ""},
	}
	for i, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("case %d: got %q, want %q", i, tt.got, tt.want)
		}
	}
}

func TestLastCheck(t *testing.T) {
	now := time.Date(2026, 7, 1, 9, 0, 0, 0, time.UTC)
	at := mtime(now.Add(-2 * time.Minute))
	r := func(vs ...v1alpha1.Verdict) []v1alpha1.MetricResult {
		var out []v1alpha1.MetricResult
		for _, v := range vs {
			out = append(out, v1alpha1.MetricResult{Verdict: v})
		}
		return out
	}
	tests := []struct {
		a    v1alpha1.AnalysisStatus
		want string
	}{
		{v1alpha1.AnalysisStatus{}, "-"},
		{v1alpha1.AnalysisStatus{LastCheckAt: at, LastResults: r(v1alpha1.VerdictSuccessful, v1alpha1.VerdictNoData)}, "passed 2m ago"},
		{v1alpha1.AnalysisStatus{LastCheckAt: at, LastResults: r(v1alpha1.VerdictSuccessful, v1alpha1.VerdictFailed)}, "failed 2m ago"},
		{v1alpha1.AnalysisStatus{LastCheckAt: at, LastResults: r(v1alpha1.VerdictError, v1alpha1.VerdictSuccessful)}, "error 2m ago"},
		{v1alpha1.AnalysisStatus{LastCheckAt: at, LastResults: r(v1alpha1.VerdictNoData)}, "no data 2m ago"},
	}
	for i, tt := range tests {
		if got := lastCheck(tt.a, now); got != tt.want {
			t.Errorf("case %d: lastCheck = %q, want %q", i, got, tt.want)
		}
	}
}

func TestPrintYAMLKeepsJSONNamesAndTypes(t *testing.T) {
	v := controlapi.RolloutView{Name: "web", Status: v1alpha1.RolloutStatus{
		Phase: v1alpha1.PhaseSucceeded, CanaryWeight: 2500,
		Stable: &v1alpha1.VersionRef{Version: "1.0"}, Canary: &v1alpha1.VersionRef{Version: "true"},
	}}
	var b bytes.Buffer
	if err := printYAML(&b, v); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	if strings.Contains(out, "{") || !strings.Contains(out, "canaryWeight: 2.5\n") {
		t.Fatalf("not block YAML with JSON names:\n%s", out)
	}
	var back struct {
		Name   string `yaml:"name"`
		Status struct {
			Stable struct{ Version any } `yaml:"stable"`
			Canary struct{ Version any } `yaml:"canary"`
		} `yaml:"status"`
	}
	if err := yaml.Unmarshal(b.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if back.Name != "web" || back.Status.Stable.Version != "1.0" || back.Status.Canary.Version != "true" {
		t.Fatalf("strings that look like numbers or booleans changed type: %+v\n%s", back, out)
	}
}

// TestResultsTableUnits: a metric of the user's shows the unit its spec
// states, and none when it states none; the canary score has none.
func TestResultsTableUnits(t *testing.T) {
	provider := &v1alpha1.MetricProvider{}
	specs := []v1alpha1.MetricSpec{
		{Name: "checkouts", Provider: provider, Unit: "req/s", ThresholdRange: &v1alpha1.ThresholdRange{Min: fptr(2)}},
		{Name: "queue-depth", Provider: provider, ThresholdRange: &v1alpha1.ThresholdRange{Max: fptr(40)}},
	}
	results := []v1alpha1.MetricResult{
		{Name: "checkouts", Stable: fptr(3), Canary: fptr(3.25), Verdict: v1alpha1.VerdictSuccessful},
		{Name: "queue-depth", Stable: fptr(12), Canary: fptr(14), Verdict: v1alpha1.VerdictSuccessful},
		{Name: "canary-score", Canary: fptr(100), Verdict: v1alpha1.VerdictSuccessful},
	}
	want := `  METRIC         STABLE    CANARY       RANGE         VERDICT
  checkouts      3 req/s   3.25 req/s   min 2 req/s   Successful
  queue-depth    12        14           max 40        Successful
  canary-score   -         100          -             Successful
`
	if got := resultsTable(results, specs); got != want {
		t.Errorf("resultsTable:\n%s\nwant:\n%s", got, want)
	}
}
