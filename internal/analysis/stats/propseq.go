package stats

import "math"

// ProportionSequentialConfig configures a ProportionSequentialTest. Zero
// fields take the defaults.
type ProportionSequentialConfig struct {
	// Alpha bounds the probability that the test ever decides Better while
	// the canary is in fact no better, and likewise for Worse; default
	// 0.05, the A/B testing convention.
	Alpha float64
	// MixtureSD is the standard deviation of the normal distribution over
	// log odds ratios that the evidence is averaged against; default 0.25.
	// It is a prior guess of the size of real changes: conversion changes
	// are small (10% to 12% is a log odds ratio of 0.2), so the default is
	// smaller than the error-rate test's.
	MixtureSD float64
}

// Defaults of ProportionSequentialConfig.
const (
	DefaultProportionSequentialAlpha     = 0.05
	DefaultProportionSequentialMixtureSD = 0.25
)

// ProportionSequentialTest is an always-valid test of whether the canary's
// proportion of successes (conversions) differs from the stable's: a
// mixture sequential probability ratio test (mSPRT) that an experiment may
// consult at every check without inflating false winners. Feed it
// cumulative counts as they grow; the chance that it ever declares a winner
// when there is none stays below Alpha however often it is asked.
//
// The proportions differ exactly when their odds ratio is not one, and the
// test is the one the error-rate monitor runs (see oddsMixture): exact
// under equal proportions whatever their level and drift, with no normal
// approximation, so it holds from the first trial. Read both sides' counts
// at the same moment, and count a success in the batch of its trial: a
// success reported long after its trial, with the traffic split changing
// meanwhile, is not what the test assumes. Not safe for concurrent use.
type ProportionSequentialTest struct {
	alpha       float64
	mix         *oddsMixture
	maxEvidence float64 // the largest log e-value so far
	verdict     ProportionVerdict
}

// NewProportionSequentialTest returns a test with no observations. It
// refuses an Alpha outside (0, 1) or a negative MixtureSD.
func NewProportionSequentialTest(cfg ProportionSequentialConfig) (*ProportionSequentialTest, error) {
	if cfg.Alpha == 0 {
		cfg.Alpha = DefaultProportionSequentialAlpha
	}
	if cfg.MixtureSD == 0 {
		cfg.MixtureSD = DefaultProportionSequentialMixtureSD
	}
	mix, err := newOddsMixture("sequential proportion test", cfg.Alpha, cfg.MixtureSD)
	if err != nil {
		return nil, err
	}
	return &ProportionSequentialTest{alpha: cfg.Alpha, mix: mix, verdict: ProportionUndecided}, nil
}

// Observe records the cumulative counts so far of both sides. Counts may
// only grow; a call that would shrink one, or has more successes than
// trials, is refused and changes nothing. Once the test has decided, the
// verdict stands (that is what bounds the error), though the counts keep
// being recorded.
func (t *ProportionSequentialTest) Observe(canary, stable Proportion) error {
	next := [4]uint64{canary.Trials, canary.Successes, stable.Trials, stable.Successes}
	if err := t.mix.observe("sequential proportion test", next); err != nil {
		return err
	}
	t.maxEvidence = math.Max(t.maxEvidence, t.mix.logEvidence())
	if t.verdict == ProportionUndecided && t.maxEvidence >= math.Log(1/t.alpha) {
		t.verdict = ProportionWorse
		if t.mix.canaryHigher() {
			t.verdict = ProportionBetter
		}
	}
	return nil
}

// ProportionSequentialStatus is a snapshot of a ProportionSequentialTest.
type ProportionSequentialStatus struct {
	// Verdict is Undecided until the evidence first crosses 1/Alpha, then
	// Better or Worse for good.
	Verdict ProportionVerdict
	// The cumulative counts last observed, and their proportions (NaN
	// while a side has no trials); Difference is canary minus stable.
	Canary, Stable         Proportion
	CanaryRate, StableRate float64
	Difference             float64
	// PValue is the always-valid p-value: 1 over the largest e-value so
	// far, at most 1. Stopping whenever it first falls to Alpha or below
	// is the test's decision, and it never grows.
	PValue float64
	// LogEvidence is the log of the mixture's e-value now; LogThreshold
	// is log(1/Alpha).
	LogEvidence, LogThreshold float64
}

// Status returns the verdict, counts and evidence so far.
func (t *ProportionSequentialTest) Status() ProportionSequentialStatus {
	c := t.mix.counts
	s := ProportionSequentialStatus{
		Verdict:      t.verdict,
		Canary:       Proportion{Successes: c[1], Trials: c[0]},
		Stable:       Proportion{Successes: c[3], Trials: c[2]},
		PValue:       math.Exp(-t.maxEvidence),
		LogEvidence:  t.mix.logEvidence(),
		LogThreshold: math.Log(1 / t.alpha),
	}
	s.CanaryRate, s.StableRate = s.Canary.Rate(), s.Stable.Rate()
	s.Difference = s.CanaryRate - s.StableRate
	return s
}
