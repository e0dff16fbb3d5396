package stats

import (
	"fmt"
	"math"
)

// Proportion is a count of successes (conversions, say) out of trials
// (the users who could have converted).
type Proportion struct {
	Successes, Trials uint64
}

// Rate returns Successes/Trials, or NaN without trials.
func (p Proportion) Rate() float64 { return proportion(p.Successes, p.Trials) }

// String writes the proportion as X/N, the way pipit judge reads it.
func (p Proportion) String() string { return fmt.Sprintf("%d/%d", p.Successes, p.Trials) }

// ProportionVerdict is the verdict on a canary's proportion of successes
// against the stable's. A higher proportion is better: the successes are
// conversions or the like.
type ProportionVerdict string

// Verdicts of the proportion tests.
const (
	ProportionBetter        ProportionVerdict = "Better"        // the canary's proportion is higher
	ProportionWorse         ProportionVerdict = "Worse"         // the canary's proportion is lower
	ProportionNoDifference  ProportionVerdict = "NoDifference"  // no significant difference
	ProportionNotEnoughData ProportionVerdict = "NotEnoughData" // too few trials to test
	// ProportionUndecided is the sequential test's state before it
	// decides: the experiment that runs it turns it into NoDifference or
	// NotEnoughData when it ends.
	ProportionUndecided ProportionVerdict = "Undecided"
)

// DefaultProportionConfLevel is the confidence level of the proportion
// tests by default: 95%, the A/B testing convention (the Mann-Whitney judge
// keeps Kayenta's 98%).
const DefaultProportionConfLevel = 0.95

// minExpectedCount is the smallest expected count of successes or failures
// on a side for which the z-test's normal approximation is trusted: R's
// prop.test warns "Chi-squared approximation may be incorrect" below it.
const minExpectedCount = 5

// ProportionResult is the outcome of ProportionTest. Numbers that are
// undefined (a side without trials, no successes or no failures at all)
// are NaN.
type ProportionResult struct {
	Canary, Stable Proportion
	// CanaryRate and StableRate are the observed proportions.
	CanaryRate, StableRate float64
	// Difference is CanaryRate - StableRate, and ConfInt its confidence
	// interval at ConfLevel (Wald's, clipped to [-1, 1], as R's).
	Difference float64
	ConfInt    [2]float64
	ConfLevel  float64
	// Z is the difference over its standard error under equal
	// proportions (the pooled one); R's X-squared is its square. PValue is
	// the two-sided p-value.
	Z, PValue float64
	// Verdict says which side is better, at significance 1 - ConfLevel;
	// Reason says why in a sentence.
	Verdict ProportionVerdict
	Reason  string
}

// ProportionTest compares the canary's proportion of successes with the
// stable's by the two-proportion z-test without continuity correction: its
// p-value and interval are those of R's
// prop.test(c(canary, stable), c(canaryN, stableN), correct = FALSE).
// confLevel 0 means DefaultProportionConfLevel.
//
// The verdict follows the p-value: Better or Worse (by the sign of the
// difference) below 1 - confLevel, else NoDifference. When a side has
// fewer than 5 expected successes or failures under equal proportions, the
// normal approximation does not hold and the verdict is NotEnoughData.
// (The interval is Wald's, unpooled, and the test pooled, as in R; near the
// threshold they may disagree on whether 0 is plausible.)
func ProportionTest(canary, stable Proportion, confLevel float64) (ProportionResult, error) {
	if confLevel == 0 {
		confLevel = DefaultProportionConfLevel
	}
	if !(confLevel > 0 && confLevel < 1) {
		return ProportionResult{}, fmt.Errorf("proportion test: confidence level %v is not in (0, 1)", confLevel)
	}
	for _, s := range []struct {
		name string
		p    Proportion
	}{{"canary", canary}, {"stable", stable}} {
		if s.p.Successes > s.p.Trials {
			return ProportionResult{}, fmt.Errorf("proportion test: %s has more successes than trials (%v)", s.name, s.p)
		}
	}
	pc, ps := canary.Rate(), stable.Rate()
	nc, ns := float64(canary.Trials), float64(stable.Trials)
	r := ProportionResult{
		Canary: canary, Stable: stable, CanaryRate: pc, StableRate: ps,
		Difference: pc - ps, ConfLevel: confLevel,
	}
	width := qnorm((1+confLevel)/2) * math.Sqrt(pc*(1-pc)/nc+ps*(1-ps)/ns)
	r.ConfInt = [2]float64{math.Max(r.Difference-width, -1), math.Min(r.Difference+width, 1)}
	pooled := float64(canary.Successes+stable.Successes) / (nc + ns)
	r.Z = r.Difference / math.Sqrt(pooled*(1-pooled)*(1/nc+1/ns))
	r.PValue = 2 * pnorm(-math.Abs(r.Z), false)
	r.Verdict, r.Reason = r.verdict(pooled)
	return r, nil
}

// verdict decides the verdict of a result whose numbers are filled in,
// pooled being the proportion of both sides together.
func (r ProportionResult) verdict(pooled float64) (ProportionVerdict, string) {
	nc, ns := float64(r.Canary.Trials), float64(r.Stable.Trials)
	if nc == 0 || ns == 0 {
		return ProportionNotEnoughData, "a side has no trials"
	}
	expected := math.Min(nc, ns) * math.Min(pooled, 1-pooled)
	if expected < minExpectedCount {
		return ProportionNotEnoughData, fmt.Sprintf(
			"the smallest expected count of successes or failures on a side is %.4g, under %d: too few for the z-test",
			expected, minExpectedCount)
	}
	alpha := 1 - r.ConfLevel
	switch {
	case r.PValue >= alpha:
		return ProportionNoDifference, fmt.Sprintf("no significant difference: p = %.4g, not under %.4g", r.PValue, alpha)
	case r.Difference > 0:
		return ProportionBetter, fmt.Sprintf("the canary's proportion is higher: p = %.4g, under %.4g", r.PValue, alpha)
	default:
		return ProportionWorse, fmt.Sprintf("the canary's proportion is lower: p = %.4g, under %.4g", r.PValue, alpha)
	}
}
