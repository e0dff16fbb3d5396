package spec

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/pipit-dev/pipit/api/v1alpha1"
)

// PresetPrefix starts every predefined CodeDeploy configuration name; a
// preset may leave it out.
const PresetPrefix = "CodeDeployDefault."

// presetShift is a preset reduced to what its expansion needs: the first
// weight and the soak at each weight, and whether the weight then keeps
// growing by the same share (linear) or goes to all traffic (canary). A
// share of all traffic is CodeDeploy's all-at-once.
type presetShift struct {
	percent  v1alpha1.Percent
	interval time.Duration
	linear   bool
}

func canaryPreset(percent float64, minutes int) presetShift {
	return presetShift{percent: v1alpha1.PercentOf(percent), interval: time.Duration(minutes) * time.Minute}
}

func linearPreset(percent float64, minutes int) presetShift {
	s := canaryPreset(percent, minutes)
	s.linear = true
	return s
}

var allAtOnce = presetShift{percent: v1alpha1.FullWeight}

// platformPresets are CodeDeploy's predefined configurations for ECS and
// Lambda, spelled as AWS spells them without the CodeDeployDefault.
// prefix, including the ECS linear names' "Every1Minutes".
var platformPresets = map[string]presetShift{
	"ECSAllAtOnce":                    allAtOnce,
	"ECSCanary10Percent5Minutes":      canaryPreset(10, 5),
	"ECSCanary10Percent15Minutes":     canaryPreset(10, 15),
	"ECSLinear10PercentEvery1Minutes": linearPreset(10, 1),
	"ECSLinear10PercentEvery3Minutes": linearPreset(10, 3),

	"LambdaAllAtOnce":                     allAtOnce,
	"LambdaCanary10Percent5Minutes":       canaryPreset(10, 5),
	"LambdaCanary10Percent10Minutes":      canaryPreset(10, 10),
	"LambdaCanary10Percent15Minutes":      canaryPreset(10, 15),
	"LambdaCanary10Percent30Minutes":      canaryPreset(10, 30),
	"LambdaLinear10PercentEvery1Minute":   linearPreset(10, 1),
	"LambdaLinear10PercentEvery2Minutes":  linearPreset(10, 2),
	"LambdaLinear10PercentEvery3Minutes":  linearPreset(10, 3),
	"LambdaLinear10PercentEvery10Minutes": linearPreset(10, 10),
}

// namedPresets are the platform presets plus the platform-free names the
// canary write-up and SAM's DeploymentPreference use (AllAtOnce,
// Canary10Percent30Minutes, Linear10PercentEvery1Minute, …): the Lambda
// names without "Lambda".
var namedPresets = withPlatformFreeNames(platformPresets)

func withPlatformFreeNames(platform map[string]presetShift) map[string]presetShift {
	out := maps.Clone(platform)
	for name, s := range platform {
		if free, ok := strings.CutPrefix(name, "Lambda"); ok {
			out[free] = s
		}
	}
	return out
}

// PresetNames lists every name a preset may have, without the optional
// CodeDeployDefault. prefix, sorted.
func PresetNames() []string { return slices.Sorted(maps.Keys(namedPresets)) }

// lookupPreset resolves a preset name, with or without the prefix.
func lookupPreset(name string) (presetShift, bool) {
	s, ok := namedPresets[strings.TrimPrefix(name, PresetPrefix)]
	return s, ok
}

// resolvePreset reduces a preset to its shift; the bool is false when it
// names no known configuration or gives no form.
func resolvePreset(p *v1alpha1.Preset) (presetShift, bool) {
	switch {
	case p.Canary != nil:
		return presetShift{percent: p.Canary.Percent, interval: p.Canary.Interval.Duration}, true
	case p.Linear != nil:
		return presetShift{percent: p.Linear.Percent, interval: p.Linear.Interval.Duration, linear: true}, true
	}
	return lookupPreset(p.Name)
}

// expandPreset turns a preset into steps: at each weight, setWeight and
// a pause of the interval, through which checks keep running and a
// failing one rolls back; after the last weight the plan ends, and, as in
// every plan, promotion waits for a passing check at that weight. So
// "every minute" means every minute, as in CodeDeploy, and validation
// makes sure checks come at least that often (presetSoak). All at once
// sets all traffic, and its promotion waits for the passing check too.
func expandPreset(p *v1alpha1.Preset) ([]PlanStep, error) {
	s, ok := resolvePreset(p)
	if !ok || s.percent <= 0 {
		return nil, fmt.Errorf("strategy.preset: %q is not a preset pipit knows", p.Name)
	}
	if s.percent >= v1alpha1.FullWeight {
		return []PlanStep{{Kind: StepSetWeight, Weight: v1alpha1.FullWeight}}, nil
	}
	weights := []v1alpha1.Percent{s.percent}
	for w := 2 * s.percent; s.linear && w < v1alpha1.FullWeight; w += s.percent {
		weights = append(weights, w)
	}
	out := make([]PlanStep, 0, 2*len(weights))
	for _, w := range weights {
		out = append(out, PlanStep{Kind: StepSetWeight, Weight: w}, PlanStep{Kind: StepPause, Duration: s.interval})
	}
	return out, nil
}

// preset checks a preset: a known name, or exactly one custom form with a
// share below all traffic, a positive interval and at most maxSteps steps.
func (v *validator) preset(p *v1alpha1.Preset) {
	const path = "spec.strategy.preset"
	forms := 0
	for _, set := range []bool{p.Name != "", p.Canary != nil, p.Linear != nil} {
		if set {
			forms++
		}
	}
	switch {
	case forms == 0:
		v.add(path, "needs a name such as %sECSCanary10Percent5Minutes, or canary or linear with percent and interval", PresetPrefix)
	case forms > 1:
		v.add(path, "set one of a name, canary and linear")
	case p.Canary != nil:
		v.presetShift(path+".canary", p.Canary, false)
	case p.Linear != nil:
		v.presetShift(path+".linear", p.Linear, true)
	default:
		v.presetName(path, p.Name)
	}
}

// presetName reports a name that is no preset, with the likely one.
func (v *validator) presetName(path, name string) {
	if _, ok := lookupPreset(name); ok {
		return
	}
	msg := fmt.Sprintf("unknown preset %q", clip(name))
	// The prefix is matched in any case here, so that its own typo in
	// case does not hide the suggestion.
	bare, prefixed := name, false
	if n := len(PresetPrefix); len(name) > n && strings.EqualFold(name[:n], PresetPrefix) {
		bare, prefixed = name[n:], true
	}
	if guess := closest(bare, PresetNames()); guess != "" {
		if prefixed {
			guess = PresetPrefix + guess
		}
		msg += fmt.Sprintf(", did you mean %q?", guess)
	} else {
		msg += "; docs/spec.md lists the presets"
	}
	v.add(path, "%s", msg)
}

// presetShift checks a custom form. A linear one makes two steps for
// every weight below all traffic, which maxSteps bounds.
func (v *validator) presetShift(path string, s *v1alpha1.PresetShift, linear bool) {
	if s.Percent <= 0 || s.Percent >= v1alpha1.FullWeight {
		v.add(path+".percent", "must be more than 0 and less than 100, not %s (all at once is the preset AllAtOnce)", num(s.Percent))
	} else if n := 2 * int((v1alpha1.FullWeight-1)/s.Percent); linear && n > maxSteps {
		v.add(path+".percent", "%s every interval makes %d steps; at most %d are allowed", num(s.Percent), n, maxSteps)
	}
	if s.Interval.Duration <= 0 {
		v.add(path+".interval", "is required: how long each weight soaks, such as 5m")
	}
}

// presetSoak refuses a preset whose soak is shorter than the time between
// checks of the metrics: a weight would then pass without a check.
func (v *validator) presetSoak(s *v1alpha1.RolloutSpec) {
	if s.Strategy.Preset == nil || s.Analysis == nil || len(s.Analysis.Metrics) == 0 {
		return
	}
	shift, ok := resolvePreset(s.Strategy.Preset)
	if !ok || shift.percent <= 0 || shift.percent >= v1alpha1.FullWeight || shift.interval <= 0 {
		return
	}
	interval := durationOr(s.Analysis.Interval, durationOr(s.Strategy.Interval, DefaultAnalysisInterval))
	if interval > shift.interval {
		v.add("spec.strategy.preset", "soaks %s at each weight, less than the %s between checks (spec.analysis.interval): "+
			"a weight would pass unchecked; check at least every %s", shift.interval, interval, shift.interval)
	}
}
