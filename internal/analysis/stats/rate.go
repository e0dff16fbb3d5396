package stats

import "math"

// RateDecision is the state of a RateTest.
type RateDecision string

// Decisions. They speak of rates of bad events such as errors: Worse means
// the canary's rate is higher.
const (
	RateUndecided RateDecision = "Undecided" // no decision yet
	RateWorse     RateDecision = "Worse"     // the canary's rate is higher
	RateBetter    RateDecision = "Better"    // the canary's rate is lower
)

// RateConfig configures a RateTest. Zero fields take the defaults.
type RateConfig struct {
	// Alpha bounds the probability that the test ever decides Worse while
	// the canary is in fact no worse (and likewise for Better); default
	// 0.01.
	Alpha float64
	// MixtureSD is the standard deviation of the normal distribution over
	// log odds ratios that the evidence is averaged against; default 1.
	// It is a prior guess of the size of real changes: 1 suits jumps such
	// as 1% to 6% errors (log odds ratio 1.8), and smaller values make
	// subtle changes quicker to detect and large ones slower.
	MixtureSD float64
}

// Defaults of RateConfig.
const (
	DefaultRateAlpha     = 0.01
	DefaultRateMixtureSD = 1.0
)

// RateTest is a sequential, anytime-valid test of whether the canary's rate
// of some event (errors, say) differs from the stable's. Feed it cumulative
// counts as they grow, as often as wanted; the chance that it ever decides
// wrongly stays below Alpha however often it is asked.
//
// Each Observe adds a batch of requests to both sides, and a mixture of
// likelihood ratios for the odds ratio of the two rates (see oddsMixture)
// gathers the evidence; crossing 1/Alpha is the decision. A Worse decision
// is wrong with probability at most Alpha whenever the canary is in fact no
// worse, not only at equal rates.
//
// The guarantee assumes requests are independent and that, within one
// batch, both sides face the same conditions. Read both sides' counts at the
// same moment: a batch that adds requests to one side only carries no
// evidence, since the canary's share of its events is then fixed. A
// RateTest is not safe for concurrent use.
type RateTest struct {
	alpha    float64
	mix      *oddsMixture
	decision RateDecision
}

// NewRateTest returns a test with no observations. It refuses an Alpha
// outside (0, 1) or a negative MixtureSD.
func NewRateTest(cfg RateConfig) (*RateTest, error) {
	if cfg.Alpha == 0 {
		cfg.Alpha = DefaultRateAlpha
	}
	if cfg.MixtureSD == 0 {
		cfg.MixtureSD = DefaultRateMixtureSD
	}
	mix, err := newOddsMixture("rate test", cfg.Alpha, cfg.MixtureSD)
	if err != nil {
		return nil, err
	}
	return &RateTest{alpha: cfg.Alpha, mix: mix, decision: RateUndecided}, nil
}

// Observe records the cumulative counts so far: requests and events on the
// canary and on the stable side. Counts may only grow; a call that would
// shrink one, or has more events than requests, is refused and changes
// nothing. Once the test has decided, the decision stands (that is what
// bounds the error), though the counts keep being recorded.
func (t *RateTest) Observe(canaryN, canaryEvents, stableN, stableEvents uint64) error {
	if err := t.mix.observe("rate test", [4]uint64{canaryN, canaryEvents, stableN, stableEvents}); err != nil {
		return err
	}
	if t.decision == RateUndecided && t.mix.logEvidence() >= math.Log(1/t.alpha) {
		t.decision = RateBetter
		if t.mix.canaryHigher() {
			t.decision = RateWorse
		}
	}
	return nil
}

// Decision returns the test's decision so far.
func (t *RateTest) Decision() RateDecision { return t.decision }

// RateStatus is a snapshot of a RateTest.
type RateStatus struct {
	Decision RateDecision // fixed at the first crossing of the threshold
	// The cumulative counts last observed.
	CanaryN, CanaryEvents uint64
	StableN, StableEvents uint64
	// CanaryRate and StableRate are events per request; NaN while a side
	// has no requests.
	CanaryRate, StableRate float64
	// LogEvidence is the log of the mixture's e-value; the test decided
	// when it first reached LogThreshold, log(1/Alpha).
	LogEvidence, LogThreshold float64
}

// Status returns the counts, rates and evidence so far.
func (t *RateTest) Status() RateStatus {
	c := t.mix.counts
	return RateStatus{
		Decision: t.decision,
		CanaryN:  c[0], CanaryEvents: c[1],
		StableN: c[2], StableEvents: c[3],
		CanaryRate:   proportion(c[1], c[0]),
		StableRate:   proportion(c[3], c[2]),
		LogEvidence:  t.mix.logEvidence(),
		LogThreshold: math.Log(1 / t.alpha),
	}
}
