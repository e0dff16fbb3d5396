package lint

import (
	"fmt"
	"math"
	"time"

	"github.com/pipit-dev/pipit/internal/spec"
)

// The assumptions of the power calculation of stage-too-short, written out
// in docs/lint.md.
const (
	// BaselineErrorRate is the error rate assumed for the stable version:
	// 1%, a service in a bad week rather than a good one, which is the
	// conservative side (the variance p(1-p) grows with p up to 50%).
	BaselineErrorRate = 0.01
	// MaxDetectableIncrease is the largest acceptable smallest detectable
	// increase of the error rate: a stage should at least notice the
	// error rate doubling, from 1% to 2%.
	MaxDetectableIncrease = 0.01
	// zAlpha is the one-sided normal quantile for a false alarm rate of
	// 0.05: only an increase matters.
	zAlpha = 1.6449
	// zPower is the normal quantile for a power of 0.8.
	zPower = 0.8416
)

// DetectableIncrease is the smallest increase of the error rate over
// BaselineErrorRate that a two-proportion z-test with a false alarm rate
// of 0.05 (one-sided) notices with probability 0.8, given canary and
// stable requests in the window:
//
//	δ = (z₀.₉₅ + z₀.₈) · √(p(1−p) · (1/canary + 1/stable)),  p = 1%
//
// It uses the baseline's variance for both versions, the usual
// approximation while δ is small next to p. It returns +Inf when either
// version saw no request.
func DetectableIncrease(canary, stable float64) float64 {
	if canary <= 0 || stable <= 0 {
		return math.Inf(1)
	}
	p := BaselineErrorRate
	return (zAlpha + zPower) * math.Sqrt(p*(1-p)*(1/canary+1/stable))
}

// stageTooShort: with the traffic the file states, each stage sends the
// canary weight × rps × soak requests; too few and the analysis passes a
// version whatever its error rate. A stage ends at the next setWeight;
// its soak is its pauses and its analysis checks × interval. A stage that
// waits for a person has no known length and is left out.
func stageTooShort(t *target) []hit {
	a := t.r.Spec.Analysis
	if a == nil || a.ExpectedRequestsPerSecond == nil {
		return nil
	}
	rps := *a.ExpectedRequestsPerSecond
	handWritten := len(t.r.Spec.Strategy.Steps) > 0
	var out []hit
	for i, step := range t.plan.Steps {
		if step.Kind != spec.StepSetWeight {
			continue
		}
		w := step.Weight.Float() / 100
		soak, known := stageSoak(t.plan, i+1)
		if !known || w <= 0 || w >= 1 {
			continue
		}
		seconds := soak.Seconds()
		delta := DetectableIncrease(rps*w*seconds, rps*(1-w)*seconds)
		if delta <= MaxDetectableIncrease {
			continue
		}
		field := "spec.strategy"
		if handWritten {
			field = stepField(i, "setWeight")
		}
		out = append(out, shortStage(field, step.Weight.Float(), soak, rps, delta))
	}
	return out
}

func shortStage(field string, weight float64, soak time.Duration, rps, delta float64) hit {
	seen := "no error rate at all"
	if !math.IsInf(delta, 1) {
		seen = fmt.Sprintf("an error rate rising from %s to %s", pct(100*BaselineErrorRate), pct(100*(BaselineErrorRate+delta)))
	}
	return hit{field: field,
		problem: fmt.Sprintf("at %s for %s of %g requests a second the canary gets about %.0f requests: too few to notice %s (power 0.8, false alarms 5%%), so the analysis passes a bad version",
			pct(weight), soak, rps, rps*weight/100*soak.Seconds(), seen),
		fix: fmt.Sprintf("soak longer at this weight (a pause or more analysis checks) or raise it, until the canary sees enough requests to notice the error rate doubling (%s to %s)",
			pct(100*BaselineErrorRate), pct(100*(BaselineErrorRate+MaxDetectableIncrease)))}
}

// stageSoak adds up the time the steps from index from on hold the
// weight, up to the next setWeight; known is false when one of them waits
// for a person or for an experiment's verdict.
func stageSoak(plan spec.Plan, from int) (soak time.Duration, known bool) {
	for _, s := range plan.Steps[from:] {
		switch s.Kind {
		case spec.StepSetWeight:
			return soak, true
		case spec.StepPause:
			if s.Duration == 0 {
				return 0, false
			}
			soak += s.Duration
		case spec.StepAnalysis:
			soak += time.Duration(s.Checks) * plan.Analysis.Interval
		case spec.StepApproval, spec.StepExperiment:
			return 0, false
		}
	}
	return soak, true
}
