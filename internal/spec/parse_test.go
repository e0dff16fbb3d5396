package spec

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pipit-dev/pipit/api/v1alpha1"
)

// header is the start of a valid rollout; the cases below add spec fields
// from line 9 on.
const header = `apiVersion: pipit.dev/v1alpha1
kind: Rollout
metadata:
  name: web
spec:
  service:
    listen: 127.0.0.1:8080
    stable: {url: "http://127.0.0.1:9001"}
`

const steps = `  strategy:
    steps:
      - setWeight: 5
`

// fileProblem is a body appended to header with the errors ParseFile must report.
type fileProblem struct {
	name string
	body string // appended to header
	want []string
}

// fileProblems are the problems of every section but the preset's
// (presetProblems).
var fileProblems = []fileProblem{
	{
		name: "unknown field suggests the known one",
		body: "  strategy:\n    stepweight: 5\n",
		want: []string{
			"f.yaml:9:3: spec.strategy: needs steps, a preset, blueGreen, an experiment, or the shorthand stepWeight or stepWeights",
			`f.yaml:10:5: spec.strategy.stepweight: unknown field "stepweight", did you mean "stepWeight"?`,
		},
	},
	{
		name: "unknown field far from every known one",
		body: steps + "  colour: blue\n",
		want: []string{`f.yaml:12:3: spec.colour: unknown field "colour"`},
	},
	{
		name: "string where a number is expected",
		body: "  strategy:\n    steps:\n      - setWeight: five\n",
		want: []string{`f.yaml:11:20: spec.strategy.steps[0].setWeight: want a number of percent such as 5 or 2.5, not the string "five"`},
	},
	{
		name: "percent sign",
		body: "  strategy:\n    steps:\n      - setWeight: 5%\n",
		want: []string{`f.yaml:11:20: spec.strategy.steps[0].setWeight: want a number of percent such as 5 or 2.5, not the string "5%" (write 5 without the %)`},
	},
	{
		name: "mapping where a list is expected",
		body: "  strategy:\n    steps: {setWeight: 5}\n",
		want: []string{"f.yaml:10:12: spec.strategy.steps: want a list, not a mapping"},
	},
	{
		name: "list where a mapping is expected",
		body: "  strategy: [5]\n",
		want: []string{"f.yaml:9:13: spec.strategy: want a mapping of fields, not a list"},
	},
	{
		name: "duration without a unit",
		body: steps + "  progressDeadline: 30\n",
		want: []string{"f.yaml:12:21: spec.progressDeadline: want a duration such as 30s or 10m, not the number 30 (add a unit)"},
	},
	{
		name: "duration that does not parse",
		body: steps + "  progressDeadline: ten minutes\n",
		want: []string{`f.yaml:12:21: spec.progressDeadline: "ten minutes" is not a duration; write it like 30s, 10m or 1h30m`},
	},
	{
		name: "negative duration",
		body: steps + "      - pause: {duration: -5m}\n",
		want: []string{"f.yaml:12:27: spec.strategy.steps[1].pause.duration: must not be negative, not -5m"},
	},
	{
		name: "empty value for a number",
		body: steps + "      - setWeight:\n",
		want: []string{"f.yaml:12:19: spec.strategy.steps[1].setWeight: has no value; want a number of percent such as 5 or 2.5"},
	},
	{
		name: "duplicate key keeps the first value and still checks it",
		body: steps + "  decision: sometimes\n  decision: manual\n",
		want: []string{
			`f.yaml:12:3: spec.decision: must be automatic, manual or hybrid, not "sometimes"`,
			`f.yaml:13:3: spec.decision: duplicate key "decision"; it is first set on line 12`,
		},
	},
	{
		name: "listener settings",
		body: "    versionHeader: \"no\"\n    trustedProxies:\n      - 10.0.0.1\n      - 10.0.0.0/33\n" +
			"    limits: {maxConnections: 0, maxConnectionsPerClient: 256}\n" + steps,
		want: []string{
			`f.yaml:9:20: spec.service.versionHeader: want true or false, not the string "no"`,
			`f.yaml:12:9: spec.service.trustedProxies[1]: "10.0.0.0/33" is not an IP address or CIDR prefix, such as 10.0.0.7 or 10.0.0.0/8`,
			"f.yaml:13:14: spec.service.limits.maxConnections: must be positive, not 0",
		},
	},
	{
		name: "machines of a canary",
		body: "    canary:\n      urls:\n        - http://10.0.0.7:8080\n        - http://10.0.0.7:8080\n        - ftp://10.0.0.9\n" + steps,
		want: []string{
			`f.yaml:12:11: spec.service.canary.urls[1]: "http://10.0.0.7:8080" is listed already, as spec.service.canary.urls[0]`,
			`f.yaml:13:11: spec.service.canary.urls[2]: must be an absolute http or https URL such as http://127.0.0.1:9001, not "ftp://10.0.0.9"`,
		},
	},
	{
		name: "weights going down",
		body: steps + "      - setWeight: 50\n      - setWeight: 25\n",
		want: []string{"f.yaml:13:9: spec.strategy.steps[2].setWeight: weights must not go down: 25 after 50"},
	},
	{
		name: "weight finer than the resolution",
		body: "  strategy:\n    stepWeights: [0.5, 0.0005]\n",
		want: []string{"f.yaml:10:24: spec.strategy.stepWeights[1]: 0.0005% is finer than the 0.001% resolution"},
	},
	{
		name: "a refused item keeps the index of the next",
		body: "  strategy:\n    stepWeights: [x, 5, 4]\n",
		want: []string{
			`f.yaml:10:19: spec.strategy.stepWeights[0]: want a number of percent such as 5 or 2.5, not the string "x"`,
			"f.yaml:10:25: spec.strategy.stepWeights[2]: stepWeights must go up: 4 after 5",
		},
	},
	{
		name: "steps and shorthand mixed",
		body: steps + "    stepWeight: 5\n",
		want: []string{"f.yaml:9:3: spec.strategy: use steps or the shorthand (stepWeight, maxWeight, stepWeights), not both"},
	},
	{
		name: "whole number out of range",
		body: steps + "      - analysis: {checks: 3000000000}\n",
		want: []string{"f.yaml:12:28: spec.strategy.steps[1].analysis.checks: 3000000000 is out of range"},
	},
	{
		name: "fraction where a whole number is expected",
		body: steps + "      - analysis: {checks: 1.5}\n",
		want: []string{"f.yaml:12:28: spec.strategy.steps[1].analysis.checks: want a whole number, not the number 1.5"},
	},
	{
		name: "infinite threshold",
		body: steps + "  analysis:\n    metrics:\n      - name: error-rate\n        thresholdRange: {max: .inf}\n",
		want: []string{"f.yaml:15:31: spec.analysis.metrics[0].thresholdRange.max: .inf is not a finite number"},
	},
	{
		name: "yes is not true",
		body: steps + "  analysis:\n    sequential: {enabled: yes}\n",
		want: []string{`f.yaml:13:27: spec.analysis.sequential.enabled: want true or false, not the string "yes"`},
	},
	{
		name: "field Kubernetes sets",
		body: steps + "status: {phase: Idle}\n",
		want: []string{"f.yaml:12:1: status: is written by pipit, not read from a rollout file; remove it"},
	},
	{
		name: "merge key",
		body: steps + "  <<: {decision: manual}\n",
		want: []string{"f.yaml:12:3: spec: merge keys (<<) are not supported; write the fields out"},
	},
	{
		name: "custom tag",
		body: steps + "  progressDeadline: !minutes 5\n",
		want: []string{"f.yaml:12:21: spec.progressDeadline: custom YAML tags such as !minutes are not supported"},
	},
	{
		name: "validation errors point at their field",
		body: steps + "  analysis:\n    failureLimit: -1\n    metrics:\n      - name: request-count\n        thresholdRange: {min: 10, max: 5}\n",
		want: []string{
			"f.yaml:13:5: spec.analysis.failureLimit: must not be negative, not -1",
			"f.yaml:16:9: spec.analysis.metrics[0].thresholdRange: min 10 is above max 5, so no value passes",
		},
	},
	{
		name: "missing field points at its parent",
		body: steps + "  analysis:\n    metrics:\n      - thresholdRange: {min: 1}\n",
		want: []string{"f.yaml:14:9: spec.analysis.metrics[0].name: is required: one of " + metricNames() + ", or a name of your own with a provider"},
	},
}

func TestParseFileReportsEveryProblemWithItsPosition(t *testing.T) {
	for _, tt := range slices.Concat(fileProblems, presetProblems) {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseFile("f.yaml", []byte(header+tt.body))
			if err == nil {
				t.Fatal("ParseFile accepted the file")
			}
			if got := strings.Split(err.Error(), "\n"); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestParseFileHeaderAndMetadata(t *testing.T) {
	data := `apiVersion: pipit.dev/v2
kind: Rollout
metadata:
  name: Web_App
  uid: 1234
  labels: {team: web}
spec:
  service: {listen: ":8080", stable: {url: "http://127.0.0.1:9001"}}
  strategy: {stepWeight: 10}
`
	_, err := ParseFile("f.yaml", []byte(data))
	want := []string{
		`f.yaml:1:1: apiVersion: must be pipit.dev/v1alpha1, not "pipit.dev/v2"`,
		`f.yaml:4:3: metadata.name: "Web_App" is not a valid name: use at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit`,
		"f.yaml:5:3: metadata.uid: is set by Kubernetes; a rollout file may set only metadata.name, namespace, labels and annotations",
	}
	if err == nil || !reflect.DeepEqual(strings.Split(err.Error(), "\n"), want) {
		t.Errorf("got %v\nwant:\n%s", err, strings.Join(want, "\n"))
	}
}

func TestParseFileAppliesNoDefaults(t *testing.T) {
	rollouts, err := ParseFile("f.yaml", []byte(header+"  strategy: {stepWeight: 10}\n"))
	if err != nil {
		t.Fatal(err)
	}
	r := rollouts[0]
	st := r.Spec.Strategy
	if r.Spec.Decision != "" || r.Spec.ProgressDeadline != nil || r.Spec.Analysis != nil ||
		r.Spec.Service.HealthCheck != nil || st.MaxWeight != nil || st.Interval != nil {
		t.Errorf("defaults were filled in: %+v", r.Spec)
	}
	if *st.StepWeight != 10*v1alpha1.PercentScale {
		t.Errorf("stepWeight = %v, want 10%%", *st.StepWeight)
	}
	p, err := Resolve(&r.Spec)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Steps) != 10 || p.Steps[8].Weight != DefaultMaxWeight || p.Decision != DefaultDecision {
		t.Errorf("plan = %+v", p)
	}
}

func TestParseFileReadsEveryKindOfValue(t *testing.T) {
	data := header + `    canary: {url: "https://canary.internal:9443/base", version: 1.10}
    healthCheck: {path: /healthz, interval: 500ms, timeout: 250ms, failureThreshold: 3}
  strategy:
    interval: 45s
    steps:
      - setWeight: 0.125
      - pause: {duration: 1h30m}
      - pause:
      - analysis: {checks: 0x3}
      - setWeight: 100
  analysis:
    failureLimit: 2
    metrics:
      - name: latency-p50
        thresholdRange: {min: 0, max: 1e3}
        dryRun: true
    sequential: {enabled: false}
    judge: {groupWeights: {latency: 2.5}}
  decision: hybrid
  progressDeadline: 2m
`
	rollouts, err := ParseFile("f.yaml", []byte(data))
	if err != nil {
		t.Fatal(err)
	}
	s := rollouts[0].Spec
	if got := s.Service.Canary.Version; got != "1.10" {
		t.Errorf("version = %q, want 1.10 as written", got)
	}
	hc := s.Service.HealthCheck
	if hc.Path != "/healthz" || hc.Interval.Duration != 500*time.Millisecond || hc.Timeout.Duration != 250*time.Millisecond || hc.FailureThreshold != 3 {
		t.Errorf("healthCheck = %+v", hc)
	}
	p, err := Resolve(&s)
	if err != nil {
		t.Fatal(err)
	}
	want := []PlanStep{
		{Kind: StepSetWeight, Weight: 125},
		{Kind: StepPause, Duration: 90 * time.Minute},
		{Kind: StepPause},
		{Kind: StepAnalysis, Checks: 3},
		{Kind: StepSetWeight, Weight: v1alpha1.FullWeight},
	}
	if !reflect.DeepEqual(p.Steps, want) {
		t.Errorf("steps = %+v\nwant %+v", p.Steps, want)
	}
	if p.Analysis.Interval != 45*time.Second || p.Decision != v1alpha1.DecisionHybrid || p.ProgressDeadline != 2*time.Minute {
		t.Errorf("plan = %+v", p)
	}
	a := s.Analysis
	if tr := a.Metrics[0].ThresholdRange; *a.FailureLimit != 2 || *tr.Min != 0 || *tr.Max != 1000 || !a.Metrics[0].DryRun ||
		*a.Sequential.Enabled || a.Judge.GroupWeights["latency"] != 2.5 {
		t.Errorf("analysis = %+v", a)
	}
}

func TestParseFileSeveralDocuments(t *testing.T) {
	second := strings.Replace(header, "name: web", "name: api", 1)
	data := "# two rollouts\n---\n" + header + steps + "---\n---\n" + second + steps + "...\n"
	rollouts, err := ParseFile("f.yaml", []byte(data))
	if err != nil {
		t.Fatal(err)
	}
	if len(rollouts) != 2 || rollouts[0].Name != "web" || rollouts[1].Name != "api" {
		t.Fatalf("got %d rollouts: %+v", len(rollouts), rollouts)
	}

	data = header + steps + "---\n" + header + "  strategy: {steps: [{setWeight: 500}]}\n"
	_, err = ParseFile("f.yaml", []byte(data))
	want := []string{
		`f.yaml:16:3: metadata.name: a rollout named "web" is already defined on line 4`,
		"f.yaml:21:23: spec.strategy.steps[0].setWeight: must be from 0 to 100, not 500",
	}
	if err == nil || !reflect.DeepEqual(strings.Split(err.Error(), "\n"), want) {
		t.Errorf("got %v\nwant:\n%s", err, strings.Join(want, "\n"))
	}
}

func TestParseFileKeepsProblemsBeforeASyntaxError(t *testing.T) {
	data := header + steps + "  decision: maybe\n---\nkind: [\n"
	_, err := ParseFile("f.yaml", []byte(data))
	if err == nil {
		t.Fatal("accepted")
	}
	got := err.Error()
	for _, want := range []string{`f.yaml:12:3: spec.decision: must be automatic, manual or hybrid, not "maybe"`, "f.yaml:14: invalid YAML: "} {
		if !strings.Contains(got, want) {
			t.Errorf("errors lack %q:\n%s", want, got)
		}
	}
}

// billionLaughs is the classic alias bomb: ten nested lists of nine
// aliases to the previous one expand to 9^9 strings.
func billionLaughs() string {
	var b strings.Builder
	b.WriteString(`a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]` + "\n")
	for c := 'b'; c <= 'j'; c++ {
		prev := string(c - 1)
		refs := strings.TrimSuffix(strings.Repeat("*"+prev+",", 9), ",")
		b.WriteString(string(c) + ": &" + string(c) + " [" + refs + "]\n")
	}
	return b.String()
}

// TestParseFileRefusesTheWholeFile covers input refused with a single
// problem: hostile input, and files with nothing usable in them.
func TestParseFileRefusesTheWholeFile(t *testing.T) {
	tests := []struct {
		name string
		data string
		want string // the only error
	}{
		{"too big", strings.Repeat("#", MaxFileSize+1), "f.yaml: is 1048577 bytes; rollout files are limited to 1 MiB (1048576 bytes)"},
		{"NUL byte", "kind: Rollout\nmetadata: {name: \x00}\n", "f.yaml:2:18: binary data (a NUL byte); a rollout file is UTF-8 text"},
		{"invalid UTF-8", "kind: Rollout\n  # caf\xe9\n", "f.yaml:2:8: binary data (bytes that are not UTF-8); a rollout file is UTF-8 text"},
		{"billion laughs", billionLaughs(), "f.yaml:1:4: YAML anchors and aliases (&name, *name) are not allowed: a rollout needs none, and refusing them stops alias bombs"},
		{"anchor only", header + steps + "  decision: &d manual\n", "f.yaml:12:13: YAML anchors and aliases (&name, *name) are not allowed: a rollout needs none, and refusing them stops alias bombs"},
		{"deep nesting", strings.Repeat("[", 100) + strings.Repeat("]", 100), "f.yaml:1:65: nesting is deeper than 64 levels"},
		{"nesting beyond the YAML parser's limit", strings.Repeat("[", 20000), "f.yaml: nesting is deeper than 64 levels"},
		{"too many nodes", strings.Repeat("- a\n", MaxNodes), "f.yaml:9999:3: the file holds more than 10000 YAML nodes; a rollout needs far fewer"},
		{"too many documents", strings.Repeat("---\n", 2*MaxNodes), "f.yaml:5001:1: the file holds more than 10000 YAML nodes; a rollout needs far fewer"},
		{"nothing", "# just a comment\n", "f.yaml: holds no rollout"},
		{"a list of rollouts", "- kind: Rollout\n", "f.yaml:1:1: a rollout is a mapping, not a list; separate several rollouts with ---"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rollouts, err := ParseFile("f.yaml", []byte(tt.data))
			var errs Errors
			if !errors.As(err, &errs) || len(errs) != 1 || rollouts != nil {
				t.Fatalf("got %d rollouts and error %v, want one error", len(rollouts), err)
			}
			if got := err.Error(); got != tt.want {
				t.Errorf("error = %q\nwant    %q", got, tt.want)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string) string {
		t.Helper()
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}

	t.Run("valid", func(t *testing.T) {
		rollouts, err := load(write("ok.yaml", header+steps))
		if err != nil || len(rollouts) != 1 || rollouts[0].Name != "web" {
			t.Fatalf("load = %v, %v", rollouts, err)
		}
	})
	t.Run("typo names file, line and field", func(t *testing.T) {
		path := write("typo.yaml", header+"  strategy:\n    steps:\n      - setWieght: 5\n")
		_, err := load(path)
		want := path + `:11:9: spec.strategy.steps[0].setWieght: unknown field "setWieght", did you mean "setWeight"?`
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error = %v\nwant it to contain %s", err, want)
		}
	})
	t.Run("too big is refused before reading", func(t *testing.T) {
		path := write("big.yaml", "")
		// A sparse file: reading it whole would take 1 GiB of memory.
		if err := os.Truncate(path, 1<<30); err != nil {
			t.Fatal(err)
		}
		_, err := load(path)
		want := path + ": is 1073741824 bytes; rollout files are limited to 1 MiB (1048576 bytes)"
		if err == nil || err.Error() != want {
			t.Errorf("error = %v, want %s", err, want)
		}
	})
	t.Run("directory", func(t *testing.T) {
		_, err := load(dir)
		if err == nil || err.Error() != dir+": is a directory, not a rollout file" {
			t.Errorf("error = %v", err)
		}
	})
	t.Run("missing", func(t *testing.T) {
		if _, err := load(filepath.Join(dir, "nope.yaml")); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("error = %v, want not exist", err)
		}
	})
}

// FuzzParseFile checks that no input makes the parser panic, that every
// refusal is a list of located problems, and that every rollout it accepts
// validates and resolves.
func FuzzParseFile(f *testing.F) {
	examples, err := filepath.Glob("../../examples/*.yaml")
	if err != nil {
		f.Fatal(err)
	}
	for _, path := range examples {
		data, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, seed := range []string{
		header + steps,
		header + steps + "---\n" + header + steps,
		header + "  strategy: {stepWeights: [0.1, 0.5, 1]}\n",
		header + "  strategy: {stepWeight: 0.001, maxWeight: 100}\n",
		header + "  strategy:\n    steps:\n      - {setWeight: 5, pause: {}}\n      - analysis:\n",
		header + "  analysis: {metrics: [{name: error-rate, thresholdRange: {max: .nan}}]}\n",
		header + "  <<: {}\n  ? [a]\n  : b\n",
		billionLaughs(),
		"[[[[[[[[[[[[",
		"a: \"\\u0000\"",
		"--- !Rollout\n",
		"",
		"{",
		"spec: {strategy: {steps: [~, 5, [], {setWeight: -0}]}}",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		rollouts, err := ParseFile("fuzz.yaml", data)
		if err != nil {
			var errs Errors
			if !errors.As(err, &errs) || len(errs) == 0 {
				t.Fatalf("error %v is not a list of problems", err)
			}
			for _, e := range errs {
				if e.File != "fuzz.yaml" || e.Reason == "" {
					t.Fatalf("problem without file or reason: %#v", e)
				}
			}
			return
		}
		if len(rollouts) == 0 {
			t.Fatal("no error and no rollout")
		}
		for _, r := range rollouts {
			if errs := Validate(r); len(errs) > 0 {
				t.Fatalf("accepted a rollout that does not validate: %v", errs)
			}
			if _, err := Resolve(&r.Spec); err != nil {
				t.Fatalf("accepted a rollout that does not resolve: %v", err)
			}
		}
	})
}

// load reads a rollout file as `pipit validate` does and returns its
// rollouts.
func load(path string) ([]*v1alpha1.Rollout, error) {
	src, err := ReadSource(path, nil)
	if err != nil {
		return nil, err
	}
	if errs := ExpandSources([]*Source{src}); len(errs) > 0 {
		return nil, errs
	}
	return src.Rollouts(), nil
}
