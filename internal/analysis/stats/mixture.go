package stats

import (
	"fmt"
	"math"
)

// mixturePoints is the number of log odds ratios in the discretised mixing
// distribution: the normal quantiles at (k - 0.5)/32, weighted equally.
// Being a proper distribution in its own right, the grid costs no validity.
const mixturePoints = 32

// oddsMixture is the evidence behind the sequential tests of two
// proportions (RateTest for bad events, ProportionSequentialTest for
// successes): a mixture of likelihood ratios for the canary's odds ratio
// against the stable's, accumulated over batches of cumulative counts.
//
// Each batch adds requests to both sides. Conditioned on the number of
// events in the batch, the canary's share of them follows a hypergeometric
// distribution when the two proportions are equal, and Fisher's noncentral
// hypergeometric with odds ratio psi when they are not. The product over
// batches of the likelihood ratio for psi against 1 is a martingale with
// mean 1 under equal proportions, whatever the common proportion and however
// it drifts from batch to batch, and however the traffic is split; the
// average of these products over a normal mixture of log psi is one too. By
// Ville's inequality such a process ever reaches 1/alpha with probability at
// most alpha. The half of the mixture with psi > 1 stays a supermartingale
// whenever the canary's odds are no higher than the stable's (and the half
// with psi < 1 in the mirror case), so a decision for one side is wrong with
// probability at most alpha over that whole composite null.
//
// The guarantee assumes trials are independent and that, within one batch,
// both sides face the same conditions. Read both sides' counts at the same
// moment: a batch that adds trials to one side only carries no evidence,
// since the canary's share of its events is then fixed.
type oddsMixture struct {
	theta   [mixturePoints]float64 // log odds ratios of the mixture
	logLR   [mixturePoints]float64 // accumulated log likelihood ratios
	counts  [4]uint64              // canary n, canary events, stable n, stable events
	scratch []float64
}

// newOddsMixture checks a sequential test's configuration and returns its
// empty mixture; name prefixes the errors.
func newOddsMixture(name string, alpha, sd float64) (*oddsMixture, error) {
	if !(alpha > 0 && alpha < 1) {
		return nil, fmt.Errorf("%s: alpha %v is not in (0, 1)", name, alpha)
	}
	if !(sd > 0) || math.IsInf(sd, 0) {
		return nil, fmt.Errorf("%s: mixture sd %v is not a positive number", name, sd)
	}
	m := &oddsMixture{}
	for k := range m.theta {
		m.theta[k] = sd * qnorm((float64(k)+0.5)/mixturePoints)
	}
	return m, nil
}

// observe adds the batch between the counts seen so far and next, the new
// cumulative counts. Counts may only grow and events may not outnumber
// trials; a refused call changes nothing. name prefixes the errors.
func (m *oddsMixture) observe(name string, next [4]uint64) error {
	if next[1] > next[0] || next[3] > next[2] {
		return fmt.Errorf("%s: more events than trials (canary %d/%d, stable %d/%d)", name, next[1], next[0], next[3], next[2])
	}
	for i, v := range next {
		if v < m.counts[i] {
			return fmt.Errorf("%s: cumulative counts went down (%v after %v)", name, next, m.counts)
		}
	}
	nc, xc := next[0]-m.counts[0], next[1]-m.counts[1]
	ns, xs := next[2]-m.counts[2], next[3]-m.counts[3]
	m.counts = next
	m.addBatch(float64(nc), float64(ns), float64(xc), float64(xc+xs))
	return nil
}

// addBatch adds one batch's log likelihood ratios: nc canary and ns stable
// trials with e events in all, x of them on the canary. Under equal
// proportions x is hypergeometric; the ratio for odds ratio e^theta is
// e^(theta x) / E[e^(theta X)], the expectation under that hypergeometric.
func (m *oddsMixture) addBatch(nc, ns, x, e float64) {
	if nc == 0 || ns == 0 || e == 0 || e == nc+ns {
		return // the canary's share of the events is fixed: no evidence
	}
	lo, hi := math.Max(0, e-ns), math.Min(nc, e)
	// Unnormalised log hypergeometric weights over the support, by the
	// ratio of successive terms.
	lh := append(m.scratch[:0], 0)
	for y := lo; y < hi; y++ {
		lh = append(lh, lh[len(lh)-1]+math.Log((e-y)*(nc-y)/((y+1)*(ns-e+y+1))))
	}
	m.scratch = lh
	logZ := logSumExp(lh, 0, lo)
	for k, th := range m.theta {
		m.logLR[k] += th*x - (logSumExp(lh, th, lo) - logZ)
	}
}

// logSumExp returns log sum_i exp(lh[i] + theta*(lo+i)).
func logSumExp(lh []float64, theta, lo float64) float64 {
	mx := math.Inf(-1)
	for i, v := range lh {
		mx = math.Max(mx, v+theta*(lo+float64(i)))
	}
	s := 0.0
	for i, v := range lh {
		s += math.Exp(v + theta*(lo+float64(i)) - mx)
	}
	return mx + math.Log(s)
}

// logEvidence is the log of the mixture's e-value: the mean over the grid
// of the likelihood ratios.
func (m *oddsMixture) logEvidence() float64 {
	return m.sideLogSum(0) - math.Log(mixturePoints)
}

// canaryHigher reports whether the evidence leans to a higher proportion
// on the canary: the half of the mixture with psi > 1 holds at least as
// much as the other.
func (m *oddsMixture) canaryHigher() bool { return m.sideLogSum(1) >= m.sideLogSum(-1) }

// sideLogSum returns the log of the summed likelihood ratios over the grid
// points with positive (sign > 0) or negative (sign < 0) log odds ratio, or
// over all of them (sign 0).
func (m *oddsMixture) sideLogSum(sign float64) float64 {
	mx := math.Inf(-1)
	for k, v := range m.logLR {
		if sign*m.theta[k] >= 0 {
			mx = math.Max(mx, v)
		}
	}
	s := 0.0
	for k, v := range m.logLR {
		if sign*m.theta[k] >= 0 {
			s += math.Exp(v - mx)
		}
	}
	return mx + math.Log(s)
}

// proportion returns events per trial, or NaN without trials.
func proportion(events, trials uint64) float64 {
	if trials == 0 {
		return math.NaN()
	}
	return float64(events) / float64(trials)
}
