package stats

import (
	"fmt"
	"math"
)

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

// mixturePoints is the number of log odds ratios in the discretised mixing
// distribution: the normal quantiles at (k - 0.5)/32, weighted equally.
// Being a proper distribution in its own right, the grid costs no validity.
const mixturePoints = 32

// RateTest is a sequential, anytime-valid test of whether the canary's rate
// of some event (errors, say) differs from the stable's. Feed it cumulative
// counts as they grow, as often as wanted; the chance that it ever decides
// wrongly stays below Alpha however often it is asked.
//
// How it works: each Observe adds a batch of requests to both sides.
// Conditioned on the number of events in the batch, the canary's share of
// them follows a hypergeometric distribution when the two rates are equal,
// and Fisher's noncentral hypergeometric with odds ratio psi when they are
// not. The product over batches of the likelihood ratio for psi against 1 is
// a martingale with mean 1 under equal rates, whatever the common rate and
// however it drifts from batch to batch, and however the traffic is split;
// the average of these products over a normal mixture of log psi is one too.
// By Ville's inequality such a process reaches 1/Alpha with probability at
// most Alpha, so crossing 1/Alpha is the decision. The half of the mixture
// with psi > 1 stays a supermartingale whenever the canary's odds are no
// higher than the stable's, so a Worse decision is wrong with probability
// at most Alpha over that whole composite null, not just at equal rates.
//
// The guarantee assumes requests are independent and that, within one
// batch, both sides face the same conditions. Read both sides' counts at the
// same moment: a batch that adds requests to one side only carries no
// evidence, since the canary's share of its events is then fixed. A
// RateTest is not safe for concurrent use.
type RateTest struct {
	alpha    float64
	theta    [mixturePoints]float64 // log odds ratios of the mixture
	logLR    [mixturePoints]float64 // accumulated log likelihood ratios
	counts   [4]uint64              // canary n, canary events, stable n, stable events
	decision RateDecision
	scratch  []float64
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
	if !(cfg.Alpha > 0 && cfg.Alpha < 1) {
		return nil, fmt.Errorf("rate test: alpha %v is not in (0, 1)", cfg.Alpha)
	}
	if !(cfg.MixtureSD > 0) || math.IsInf(cfg.MixtureSD, 0) {
		return nil, fmt.Errorf("rate test: mixture sd %v is not a positive number", cfg.MixtureSD)
	}
	t := &RateTest{alpha: cfg.Alpha, decision: RateUndecided}
	for k := range t.theta {
		t.theta[k] = cfg.MixtureSD * qnorm((float64(k)+0.5)/mixturePoints)
	}
	return t, nil
}

// Observe records the cumulative counts so far: requests and events on the
// canary and on the stable side. Counts may only grow; a call that would
// shrink one, or has more events than requests, is refused and changes
// nothing. Once the test has decided, the decision stands (that is what
// bounds the error), though the counts keep being recorded.
func (t *RateTest) Observe(canaryN, canaryEvents, stableN, stableEvents uint64) error {
	next := [4]uint64{canaryN, canaryEvents, stableN, stableEvents}
	if canaryEvents > canaryN || stableEvents > stableN {
		return fmt.Errorf("rate test: more events than requests (canary %d/%d, stable %d/%d)", canaryEvents, canaryN, stableEvents, stableN)
	}
	for i, v := range next {
		if v < t.counts[i] {
			return fmt.Errorf("rate test: cumulative counts went down (%v after %v)", next, t.counts)
		}
	}
	nc, xc := next[0]-t.counts[0], next[1]-t.counts[1]
	ns, xs := next[2]-t.counts[2], next[3]-t.counts[3]
	t.counts = next
	t.addBatch(float64(nc), float64(ns), float64(xc), float64(xc+xs))
	if t.decision == RateUndecided && t.logEvidence() >= math.Log(1/t.alpha) {
		t.decision = RateBetter
		if t.sideLogSum(1) >= t.sideLogSum(-1) {
			t.decision = RateWorse
		}
	}
	return nil
}

// addBatch adds one batch's log likelihood ratios: nc canary and ns stable
// requests with e events in all, x of them on the canary. Under equal rates
// x is hypergeometric; the ratio for odds ratio e^theta is
// e^(theta x) / E[e^(theta X)], the expectation under that hypergeometric.
func (t *RateTest) addBatch(nc, ns, x, e float64) {
	if nc == 0 || ns == 0 || e == 0 || e == nc+ns {
		return // the canary's share of the events is fixed: no evidence
	}
	lo, hi := math.Max(0, e-ns), math.Min(nc, e)
	// Unnormalised log hypergeometric weights over the support, by the
	// ratio of successive terms.
	lh := append(t.scratch[:0], 0)
	for y := lo; y < hi; y++ {
		lh = append(lh, lh[len(lh)-1]+math.Log((e-y)*(nc-y)/((y+1)*(ns-e+y+1))))
	}
	t.scratch = lh
	logZ := logSumExp(lh, 0, lo)
	for k, th := range t.theta {
		t.logLR[k] += th*x - (logSumExp(lh, th, lo) - logZ)
	}
}

// logSumExp returns log sum_i exp(lh[i] + theta*(lo+i)).
func logSumExp(lh []float64, theta, lo float64) float64 {
	m := math.Inf(-1)
	for i, v := range lh {
		m = math.Max(m, v+theta*(lo+float64(i)))
	}
	s := 0.0
	for i, v := range lh {
		s += math.Exp(v + theta*(lo+float64(i)) - m)
	}
	return m + math.Log(s)
}

// logEvidence is the log of the mixture's e-value: the mean over the grid
// of the likelihood ratios.
func (t *RateTest) logEvidence() float64 {
	return t.sideLogSum(0) - math.Log(mixturePoints)
}

// sideLogSum returns the log of the summed likelihood ratios over the grid
// points with positive (sign > 0) or negative (sign < 0) log odds ratio, or
// over all of them (sign 0).
func (t *RateTest) sideLogSum(sign float64) float64 {
	m := math.Inf(-1)
	for k, v := range t.logLR {
		if sign*t.theta[k] >= 0 {
			m = math.Max(m, v)
		}
	}
	s := 0.0
	for k, v := range t.logLR {
		if sign*t.theta[k] >= 0 {
			s += math.Exp(v - m)
		}
	}
	return m + math.Log(s)
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
	rate := func(e, n uint64) float64 {
		if n == 0 {
			return math.NaN()
		}
		return float64(e) / float64(n)
	}
	return RateStatus{
		Decision: t.decision,
		CanaryN:  t.counts[0], CanaryEvents: t.counts[1],
		StableN: t.counts[2], StableEvents: t.counts[3],
		CanaryRate:   rate(t.counts[1], t.counts[0]),
		StableRate:   rate(t.counts[3], t.counts[2]),
		LogEvidence:  t.logEvidence(),
		LogThreshold: math.Log(1 / t.alpha),
	}
}
