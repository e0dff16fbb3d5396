package stats

import (
	"fmt"
	"math"
)

// DefaultSRMAlpha is the p-value below which SampleRatioTest calls a split
// broken by default. It is far stricter than the tests' 5%: the check runs
// at every look of every experiment, and a false alarm stops a healthy one,
// while a real mismatch (a redirect that loses one variant's users, a bot
// that sticks to one) soon gives p-values far smaller.
const DefaultSRMAlpha = 0.001

// SRMResult is the outcome of SampleRatioTest.
type SRMResult struct {
	// Expected holds the counts the planned split expects, in the order
	// of the observed counts.
	Expected []float64
	// ChiSquare is Pearson's statistic, with DF degrees of freedom
	// (variants - 1), and PValue its upper tail: the probability of a
	// split at least this far from the plan if assignment follows it.
	ChiSquare float64
	DF        int
	PValue    float64
	// Mismatch is PValue < the alpha the test ran with: the split is
	// broken, and the experiment's numbers are not to be trusted.
	Mismatch bool
}

// SampleRatioTest checks for a sample ratio mismatch: whether the counts of
// users assigned to each variant fit the planned split, by Pearson's
// chi-square goodness of fit (R's chisq.test(counts, p = planned)).
// planned gives each variant's share in any unit (50 and 50, or 0.9 and
// 0.1); alpha 0 means DefaultSRMAlpha. With no assignments yet there is no
// evidence of a mismatch: ChiSquare 0 and PValue 1.
func SampleRatioTest(counts []uint64, planned []float64, alpha float64) (SRMResult, error) {
	if alpha == 0 {
		alpha = DefaultSRMAlpha
	}
	switch {
	case !(alpha > 0 && alpha < 1):
		return SRMResult{}, fmt.Errorf("sample ratio test: alpha %v is not in (0, 1)", alpha)
	case len(counts) < 2 || len(counts) != len(planned):
		return SRMResult{}, fmt.Errorf("sample ratio test: %d counts and %d planned shares, want the same number, at least 2", len(counts), len(planned))
	}
	var total, shares float64
	for i, w := range planned {
		if !(w > 0) || math.IsInf(w, 0) {
			return SRMResult{}, fmt.Errorf("sample ratio test: planned share %d is %v, want a positive number", i+1, w)
		}
		shares += w
		total += float64(counts[i])
	}
	r := SRMResult{Expected: make([]float64, len(counts)), DF: len(counts) - 1, PValue: 1}
	for i, w := range planned {
		r.Expected[i] = total * w / shares
		if total > 0 {
			d := float64(counts[i]) - r.Expected[i]
			r.ChiSquare += d * d / r.Expected[i]
		}
	}
	if total > 0 {
		r.PValue = upperGamma(float64(r.DF)/2, r.ChiSquare/2)
	}
	r.Mismatch = r.PValue < alpha
	return r, nil
}

// upperGamma returns the regularized upper incomplete gamma function
// Q(a, x), the upper tail of a chi-square with 2a degrees of freedom at 2x:
// by its power series for P = 1 - Q when x < a + 1, where the series
// converges fast and Q is not small, else by its continued fraction
// (evaluated by the modified Lentz method), which keeps tiny tails accurate.
func upperGamma(a, x float64) float64 {
	if x <= 0 {
		return 1
	}
	lg, _ := math.Lgamma(a)
	prefix := math.Exp(a*math.Log(x) - x - lg)
	const eps, tiny = 1e-16, 1e-300
	if x < a+1 {
		term, sum := 1/a, 1/a
		for n := 1.0; n < 1000 && math.Abs(term) > eps*math.Abs(sum); n++ {
			term *= x / (a + n)
			sum += term
		}
		return 1 - prefix*sum
	}
	b := x + 1 - a
	c, d := 1/tiny, 1/b
	h := d
	for i := 1.0; i < 1000; i++ {
		an := -i * (i - a)
		b += 2
		d = an*d + b
		if math.Abs(d) < tiny {
			d = tiny
		}
		c = b + an/c
		if math.Abs(c) < tiny {
			c = tiny
		}
		d = 1 / d
		delta := d * c
		h *= delta
		if math.Abs(delta-1) < eps {
			break
		}
	}
	return prefix * h
}
