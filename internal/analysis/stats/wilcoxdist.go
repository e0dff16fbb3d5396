package stats

import "math"

// wilcoxDist is the exact null distribution of the Mann-Whitney statistic
// for samples of m and n values without ties (R's dwilcox family).
type wilcoxDist struct {
	count []float64 // count[k]: arrangements with statistic k
	total float64   // choose(m+n, n), the number of arrangements
}

// newWilcoxDist counts arrangements by the recurrence on the largest value:
// if it belongs to x it beats all j values of y, else it beats nothing, so
// f(i, j; k) = f(i-1, j; k-j) + f(i, j-1; k). One row of j is kept per i.
// The counts exceed 2^53 for large samples and are then rounded, as R's are.
func newWilcoxDist(m, n int) wilcoxDist {
	prev := make([][]float64, n+1) // f(i-1, j; .)
	for j := range prev {
		prev[j] = []float64{1} // f(0, j) has one arrangement, statistic 0
	}
	for i := 1; i <= m; i++ {
		cur := make([][]float64, n+1)
		cur[0] = []float64{1}
		for j := 1; j <= n; j++ {
			c := make([]float64, i*j+1)
			for k, v := range prev[j] {
				c[k+j] += v
			}
			for k, v := range cur[j-1] {
				c[k] += v
			}
			cur[j] = c
		}
		prev = cur
	}
	d := wilcoxDist{count: prev[n]}
	for _, v := range d.count {
		d.total += v
	}
	return d
}

// lower returns P(W <= q), with R's allowance of 1e-7 for a q that is an
// integer up to rounding.
func (d wilcoxDist) lower(q float64) float64 {
	q = math.Floor(q + 1e-7)
	if q < 0 {
		return 0
	}
	p := 0.0
	for k := 0; k <= int(q) && k < len(d.count); k++ {
		p += d.count[k]
	}
	return p / d.total
}

// upper returns P(W > q), summed over the upper tail itself so that small
// probabilities keep their digits.
func (d wilcoxDist) upper(q float64) float64 {
	q = math.Floor(q + 1e-7)
	p := 0.0
	for k := max(int(q)+1, 0); k < len(d.count); k++ {
		p += d.count[k]
	}
	return p / d.total
}

// quantile returns R's qwilcox(p): the smallest q with P(W <= q) >= p,
// allowing 10 machine epsilons for rounding, scanned from the nearer end.
func (d wilcoxDist) quantile(p float64) int {
	mn := len(d.count) - 1
	switch {
	case p <= 0:
		return 0
	case p >= 1:
		return mn
	}
	cum := 0.0
	if p <= 0.5 {
		p -= 10 * eps
		for q := 0; ; q++ {
			cum += d.count[q] / d.total
			if cum >= p {
				return q
			}
		}
	}
	p = 1 - p + 10*eps
	for q := 0; ; q++ {
		cum += d.count[q] / d.total
		if cum > p {
			return mn - q
		}
	}
}
