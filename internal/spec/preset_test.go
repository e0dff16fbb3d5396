package spec

import (
	"encoding/json"
	"maps"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pipit-dev/pipit/api/v1alpha1"
)

// presetStages gives every preset name the weights it walks and the soak
// at each, written out from AWS's description of the configuration.
var presetStages = map[string]struct {
	weights []float64
	soak    time.Duration // zero: no pause (all at once)
}{
	"ECSAllAtOnce":                        {[]float64{100}, 0},
	"ECSCanary10Percent5Minutes":          {[]float64{10}, 5 * time.Minute},
	"ECSCanary10Percent15Minutes":         {[]float64{10}, 15 * time.Minute},
	"ECSLinear10PercentEvery1Minutes":     {linear10, time.Minute},
	"ECSLinear10PercentEvery3Minutes":     {linear10, 3 * time.Minute},
	"LambdaAllAtOnce":                     {[]float64{100}, 0},
	"LambdaCanary10Percent5Minutes":       {[]float64{10}, 5 * time.Minute},
	"LambdaCanary10Percent10Minutes":      {[]float64{10}, 10 * time.Minute},
	"LambdaCanary10Percent15Minutes":      {[]float64{10}, 15 * time.Minute},
	"LambdaCanary10Percent30Minutes":      {[]float64{10}, 30 * time.Minute},
	"LambdaLinear10PercentEvery1Minute":   {linear10, time.Minute},
	"LambdaLinear10PercentEvery2Minutes":  {linear10, 2 * time.Minute},
	"LambdaLinear10PercentEvery3Minutes":  {linear10, 3 * time.Minute},
	"LambdaLinear10PercentEvery10Minutes": {linear10, 10 * time.Minute},
	"AllAtOnce":                           {[]float64{100}, 0},
	"Canary10Percent5Minutes":             {[]float64{10}, 5 * time.Minute},
	"Canary10Percent10Minutes":            {[]float64{10}, 10 * time.Minute},
	"Canary10Percent15Minutes":            {[]float64{10}, 15 * time.Minute},
	"Canary10Percent30Minutes":            {[]float64{10}, 30 * time.Minute},
	"Linear10PercentEvery1Minute":         {linear10, time.Minute},
	"Linear10PercentEvery2Minutes":        {linear10, 2 * time.Minute},
	"Linear10PercentEvery3Minutes":        {linear10, 3 * time.Minute},
	"Linear10PercentEvery10Minutes":       {linear10, 10 * time.Minute},
}

// linear10 are the weights of a 10% linear preset: all traffic follows
// the last soak, at promotion.
var linear10 = []float64{10, 20, 30, 40, 50, 60, 70, 80, 90}

// stagesOf writes out the steps of a preset walking weights: at each, the
// weight and the soak when there is one.
func stagesOf(weights []float64, soak time.Duration) []PlanStep {
	var want []PlanStep
	for _, w := range weights {
		want = append(want, PlanStep{Kind: StepSetWeight, Weight: v1alpha1.PercentOf(w)})
		if soak > 0 {
			want = append(want, PlanStep{Kind: StepPause, Duration: soak})
		}
	}
	return want
}

func TestEveryNamedPresetExpands(t *testing.T) {
	if got, want := PresetNames(), slices.Sorted(maps.Keys(presetStages)); !reflect.DeepEqual(got, want) {
		t.Fatalf("PresetNames() = %v\nthe test knows %v", got, want)
	}
	for name, stage := range presetStages {
		want := stagesOf(stage.weights, stage.soak)
		for _, written := range []string{name, PresetPrefix + name} {
			r := validRollout()
			r.Spec.Strategy = v1alpha1.Strategy{Preset: &v1alpha1.Preset{Name: written}}
			if errs := Validate(r); len(errs) > 0 {
				t.Errorf("%s: Validate: %v", written, errs)
				continue
			}
			p, err := Resolve(&r.Spec)
			if err != nil || !reflect.DeepEqual(p.Steps, want) {
				t.Errorf("%s: steps = %+v, %v\nwant %+v", written, p.Steps, err, want)
			}
		}
	}
}

// presetForms are preset files, as written, with the steps they expand to.
var presetForms = []struct {
	name, strategy string
	want           []PlanStep
}{
	{"bare name", "preset: CodeDeployDefault.ECSCanary10Percent5Minutes", stagesOf([]float64{10}, 5*time.Minute)},
	{"name in the mapping", "preset: {name: AllAtOnce}", stagesOf([]float64{100}, 0)},
	{"custom canary", "preset: {canary: {percent: 2.5, interval: 90s}}", stagesOf([]float64{2.5}, 90*time.Second)},
	{"custom linear", "preset:\n      linear: {percent: 30, interval: 2m}", stagesOf([]float64{30, 60, 90}, 2*time.Minute)},
	{"custom linear dividing 100", "preset: {linear: {percent: 25, interval: 1m}}", stagesOf([]float64{25, 50, 75}, time.Minute)},
}

func TestPresetFormsExpand(t *testing.T) {
	for _, tt := range presetForms {
		t.Run(tt.name, func(t *testing.T) {
			rs, err := ParseFile("f.yaml", []byte(header+"  strategy:\n    "+tt.strategy+"\n"))
			if err != nil {
				t.Fatal(err)
			}
			p, err := Resolve(&rs[0].Spec)
			if err != nil || !reflect.DeepEqual(p.Steps, tt.want) {
				t.Errorf("steps = %+v, %v\nwant %+v", p.Steps, err, tt.want)
			}
		})
	}
}

// A preset read from the Kubernetes API arrives as JSON, in either form,
// and goes back the way it came.
func TestPresetJSONRoundTrip(t *testing.T) {
	for _, in := range []string{
		`{"preset":"CodeDeployDefault.LambdaLinear10PercentEvery1Minute"}`,
		`{"preset":{"linear":{"percent":10,"interval":"1m0s"}}}`,
	} {
		var st v1alpha1.Strategy
		if err := json.Unmarshal([]byte(in), &st); err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		out, err := json.Marshal(st)
		if err != nil || string(out) != in {
			t.Errorf("%s came back as %s, %v", in, out, err)
		}
	}
}

// presetProblems are preset mistakes with the errors ParseFile reports,
// run by TestParseFileReportsEveryProblemWithItsPosition.
var presetProblems = []fileProblem{
	{name: "preset typo", body: "  strategy:\n    preset: ECSLinear10PercentEvery1Minute\n", want: []string{
		`f.yaml:10:5: spec.strategy.preset: unknown preset "ECSLinear10PercentEvery1Minute", did you mean "ECSLinear10PercentEvery1Minutes"?`}},
	{name: "preset typo keeps the prefix", body: "  strategy:\n    preset: codedeploydefault.ECSCanary10Percent5Minute\n", want: []string{
		`f.yaml:10:5: spec.strategy.preset: unknown preset "codedeploydefault.ECSCanary10Percent5Min…", did you mean "CodeDeployDefault.ECSCanary10Percent5Minutes"?`}},
	{name: "preset far from every name", body: "  strategy:\n    preset: blue-green\n", want: []string{
		`f.yaml:10:5: spec.strategy.preset: unknown preset "blue-green"; docs/spec.md lists the presets`}},
	{name: "preset with steps", body: steps + "    preset: AllAtOnce\n", want: []string{
		"f.yaml:12:5: spec.strategy.preset: use preset, steps or the shorthand (stepWeight, maxWeight, stepWeights), only one of them"}},
	{name: "preset with the shorthand", body: "  strategy:\n    stepWeight: 5\n    preset: AllAtOnce\n", want: []string{
		"f.yaml:11:5: spec.strategy.preset: use preset, steps or the shorthand (stepWeight, maxWeight, stepWeights), only one of them"}},
	{name: "empty preset", body: "  strategy:\n    preset: {}\n", want: []string{
		"f.yaml:10:5: spec.strategy.preset: needs a name such as CodeDeployDefault.ECSCanary10Percent5Minutes, or canary or linear with percent and interval"}},
	{name: "preset name and form", body: "  strategy:\n    preset: {name: AllAtOnce, linear: {percent: 10, interval: 1m}}\n", want: []string{
		"f.yaml:10:5: spec.strategy.preset: set one of a name, canary and linear"}},
	{name: "preset form typo", body: "  strategy:\n    preset: {canery: {percent: 10, interval: 5m}}\n", want: []string{
		"f.yaml:10:5: spec.strategy.preset: needs a name such as CodeDeployDefault.ECSCanary10Percent5Minutes, or canary or linear with percent and interval",
		`f.yaml:10:14: spec.strategy.preset.canery: unknown field "canery", did you mean "canary"?`}},
	{name: "canary of all traffic", body: "  strategy:\n    preset:\n      canary: {percent: 100, interval: 5m}\n", want: []string{
		"f.yaml:11:16: spec.strategy.preset.canary.percent: must be more than 0 and less than 100, not 100 (all at once is the preset AllAtOnce)"}},
	{name: "canary without interval", body: "  strategy:\n    preset:\n      canary: {percent: 10}\n", want: []string{
		"f.yaml:11:7: spec.strategy.preset.canary.interval: is required: how long each weight soaks, such as 5m"}},
	{name: "linear of no traffic", body: "  strategy:\n    preset:\n      linear: {percent: 0, interval: 1m}\n", want: []string{
		"f.yaml:11:16: spec.strategy.preset.linear.percent: must be more than 0 and less than 100, not 0 (all at once is the preset AllAtOnce)"}},
	{name: "linear of too many steps", body: "  strategy:\n    preset:\n      linear: {percent: 0.1, interval: 1m}\n", want: []string{
		"f.yaml:11:16: spec.strategy.preset.linear.percent: 0.1 every interval makes 1998 steps; at most 1000 are allowed"}},
	{name: "linear interval without unit", body: "  strategy:\n    preset:\n      linear: {percent: 10, interval: 60}\n", want: []string{
		"f.yaml:11:39: spec.strategy.preset.linear.interval: want a duration such as 30s or 10m, not the number 60 (add a unit)"}},
	{name: "preset soaking less than a check interval", body: "  strategy:\n    preset: Linear10PercentEvery1Minute\n" +
		"  analysis:\n    interval: 2m\n    metrics:\n      - name: request-success-rate\n        thresholdRange: {min: 99}\n", want: []string{
		"f.yaml:10:5: spec.strategy.preset: soaks 1m0s at each weight, less than the 2m0s between checks (spec.analysis.interval): " +
			"a weight would pass unchecked; check at least every 1m0s"}},
	{name: "custom preset soaking less than the default check interval", body: "  strategy:\n    preset: {canary: {percent: 5, interval: 30s}}\n" +
		"  analysis:\n    metrics:\n      - name: request-success-rate\n        thresholdRange: {min: 99}\n", want: []string{
		"f.yaml:10:5: spec.strategy.preset: soaks 30s at each weight, less than the 1m0s between checks (spec.analysis.interval): " +
			"a weight would pass unchecked; check at least every 30s"}},
	{name: "preset as a list", body: "  strategy:\n    preset: [AllAtOnce]\n", want: []string{
		"f.yaml:10:13: spec.strategy.preset: want a mapping of fields, not a list"}},
}

// TestPresetNamesInDocs keeps docs/spec.md's table of presets complete.
func TestPresetNamesInDocs(t *testing.T) {
	b, err := os.ReadFile("../../docs/spec.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	for _, name := range PresetNames() {
		if !strings.Contains(doc, "`"+name+"`") {
			t.Errorf("docs/spec.md does not list the preset %s", name)
		}
	}
}
