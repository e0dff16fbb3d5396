package spec

import (
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pipit-dev/pipit/api/v1alpha1"
)

// Defaults applied where a rollout leaves a field out. docs/spec.md lists
// them; keep the two in step.
const (
	DefaultProgressDeadline     = 10 * time.Minute
	DefaultAnalysisInterval     = time.Minute
	DefaultFailureLimit         = 0
	DefaultAnalysisChecks       = 1
	DefaultMaxWeight            = 50 * v1alpha1.PercentScale
	DefaultHealthPath           = "/health"
	DefaultHealthInterval       = time.Second
	DefaultHealthTimeout        = time.Second
	DefaultHealthFailures       = 2
	DefaultDecision             = v1alpha1.DecisionAutomatic
	DefaultSuccessRateThreshold = 99.0
)

// StepKind says what a resolved step does.
type StepKind int

const (
	// StepSetWeight sends Weight of the traffic to the canary.
	StepSetWeight StepKind = iota
	// StepPause waits Duration, or for a person when Duration is zero.
	StepPause
	// StepAnalysis waits until Checks checks passed at this step.
	StepAnalysis
)

func (k StepKind) String() string {
	switch k {
	case StepSetWeight:
		return "setWeight"
	case StepPause:
		return "pause"
	case StepAnalysis:
		return "analysis"
	}
	return fmt.Sprintf("StepKind(%d)", int(k))
}

// PlanStep is one step with its defaults applied.
type PlanStep struct {
	Kind     StepKind
	Weight   v1alpha1.Percent // StepSetWeight
	Duration time.Duration    // StepPause; zero waits for a person
	Checks   int              // StepAnalysis
}

// Describe renders the step as a short phrase for events and tables.
func (s PlanStep) Describe() string {
	switch s.Kind {
	case StepSetWeight:
		return "setWeight " + s.Weight.String()
	case StepPause:
		if s.Duration == 0 {
			return "pause until promoted"
		}
		return "pause " + s.Duration.String()
	case StepAnalysis:
		if s.Checks == 1 {
			return "analysis (1 check)"
		}
		return fmt.Sprintf("analysis (%d checks)", s.Checks)
	}
	return s.Kind.String()
}

// AnalysisPlan is the analysis section with its defaults applied.
type AnalysisPlan struct {
	Interval     time.Duration
	FailureLimit int
	Metrics      []v1alpha1.MetricSpec
}

// Plan is a rollout spec resolved for the engine: every default applied and
// the shorthand expanded into steps. It is derived from the spec each time
// the spec is loaded and never stored.
type Plan struct {
	Steps            []PlanStep
	Decision         v1alpha1.DecisionMode
	ProgressDeadline time.Duration
	Analysis         AnalysisPlan
}

// Resolve turns a validated spec into a Plan. It fails only on specs that
// validation would have refused, so callers validate first for good
// messages.
func Resolve(s *v1alpha1.RolloutSpec) (Plan, error) {
	p := Plan{
		Decision:         s.Decision,
		ProgressDeadline: durationOr(s.ProgressDeadline, DefaultProgressDeadline),
		Analysis: AnalysisPlan{
			Interval:     durationOr(s.Strategy.Interval, DefaultAnalysisInterval),
			FailureLimit: DefaultFailureLimit,
		},
	}
	if p.Decision == "" {
		p.Decision = DefaultDecision
	}
	if a := s.Analysis; a != nil {
		p.Analysis.Interval = durationOr(a.Interval, p.Analysis.Interval)
		if a.FailureLimit != nil {
			p.Analysis.FailureLimit = int(*a.FailureLimit)
		}
		p.Analysis.Metrics = a.Metrics
	}
	steps, err := expandSteps(&s.Strategy)
	if err != nil {
		return Plan{}, err
	}
	p.Steps = steps
	return p, nil
}

// expandSteps resolves the explicit steps, or expands Flagger's shorthand
// into setWeight + analysis pairs: each weight holds until one check passed
// at it, which is what Flagger does every interval.
func expandSteps(st *v1alpha1.Strategy) ([]PlanStep, error) {
	shorthand := ShorthandWeights(st)
	if len(st.Steps) > 0 && len(shorthand) > 0 {
		return nil, fmt.Errorf("strategy: steps and the shorthand (stepWeight, stepWeights) cannot be mixed")
	}
	if len(shorthand) > 0 {
		out := make([]PlanStep, 0, 2*len(shorthand))
		for _, w := range shorthand {
			out = append(out,
				PlanStep{Kind: StepSetWeight, Weight: w},
				PlanStep{Kind: StepAnalysis, Checks: DefaultAnalysisChecks})
		}
		return out, nil
	}
	out := make([]PlanStep, 0, len(st.Steps))
	for i, step := range st.Steps {
		switch {
		case step.SetWeight != nil:
			out = append(out, PlanStep{Kind: StepSetWeight, Weight: *step.SetWeight})
		case step.Pause != nil:
			out = append(out, PlanStep{Kind: StepPause, Duration: durationOr(step.Pause.Duration, 0)})
		case step.Analysis != nil:
			checks := int(step.Analysis.Checks)
			if checks == 0 {
				checks = DefaultAnalysisChecks
			}
			out = append(out, PlanStep{Kind: StepAnalysis, Checks: checks})
		default:
			return nil, fmt.Errorf("strategy.steps[%d]: no step kind set", i)
		}
	}
	return out, nil
}

// ShorthandWeights lists the weights of the shorthand form: stepWeights as
// written, or stepWeight, 2×stepWeight, … up to maxWeight (default 50%).
// It returns nil when the strategy does not use the shorthand.
func ShorthandWeights(st *v1alpha1.Strategy) []v1alpha1.Percent {
	if len(st.StepWeights) > 0 {
		return st.StepWeights
	}
	if st.StepWeight == nil || *st.StepWeight <= 0 {
		return nil
	}
	maxWeight := v1alpha1.Percent(DefaultMaxWeight)
	if st.MaxWeight != nil {
		maxWeight = *st.MaxWeight
	}
	var ws []v1alpha1.Percent
	for w := *st.StepWeight; w < maxWeight; w += *st.StepWeight {
		ws = append(ws, w)
	}
	return append(ws, maxWeight)
}

func durationOr(d *metav1.Duration, def time.Duration) time.Duration {
	if d == nil {
		return def
	}
	return d.Duration
}
