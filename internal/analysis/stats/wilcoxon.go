package stats

import (
	"errors"
	"fmt"
	"math"
	"slices"
)

// Alternative names the alternative hypothesis of a test, as R's
// alternative argument does. The shift is that of x relative to y.
type Alternative int

// The alternatives R's wilcox.test knows.
const (
	TwoSided Alternative = iota // x is shifted either way from y
	Greater                     // x is shifted up from y
	Less                        // x is shifted down from y
)

// String returns R's spelling of the alternative.
func (a Alternative) String() string {
	switch a {
	case TwoSided:
		return "two.sided"
	case Greater:
		return "greater"
	case Less:
		return "less"
	}
	return fmt.Sprintf("Alternative(%d)", int(a))
}

// Method chooses how the p-value and confidence interval are computed.
type Method int

// Methods. MethodAuto is R's default (exact = NULL).
const (
	// MethodAuto is exact when both samples have fewer than 50 values and
	// no value is tied, and the normal approximation otherwise.
	MethodAuto Method = iota
	// MethodExact asks for the exact distribution; as in R, ties still force
	// the normal approximation.
	MethodExact
	// MethodNormal always uses the normal approximation (R's exact = FALSE).
	MethodNormal
)

// WilcoxonOptions configures WilcoxonTest. The zero value is R's default
// apart from the confidence level, which R also defaults to 0.95.
type WilcoxonOptions struct {
	Alternative Alternative // the alternative hypothesis
	// ConfLevel is the confidence level of the interval, in (0, 1);
	// 0 means 0.95.
	ConfLevel float64
	Method    Method // exact or normal approximation
}

// WilcoxonResult is the outcome of WilcoxonTest, field for field R's htest
// object with conf.int = TRUE.
type WilcoxonResult struct {
	// W is the Mann-Whitney statistic: the rank sum of x minus
	// nx(nx+1)/2, i.e. the number of pairs with x > y, ties counting half.
	W      float64
	PValue float64 // for the chosen alternative
	// Estimate is the Hodges-Lehmann estimate of the shift of x from y.
	// With the exact method it is the median of all differences x_i - y_j;
	// with the normal approximation it is R's root of the uncorrected
	// standardised statistic.
	Estimate float64
	// ConfInt is the confidence interval of the shift; a one-sided
	// alternative leaves one end infinite.
	ConfInt [2]float64
	// ConfLevel is the level the interval achieves. The exact interval
	// can only take certain levels; when the requested one is out of reach
	// R reports, and so does this, the level achieved.
	ConfLevel float64
	// Exact says whether the exact distribution was used.
	Exact bool
}

// ErrAllTied reports samples that are each constant: the rank statistic then
// has no spread at some shift and R refuses to build an interval.
var ErrAllTied = errors.New("cannot compute confidence interval when all observations are tied")

// uniroot's tolerance as wilcox.test passes it (tol.root = 1e-4).
const rootTol = 1e-4

// WilcoxonTest runs the two-sample Wilcoxon rank-sum test of x against y
// (a location shift of x relative to y; the null shift is 0) and returns what
// R's wilcox.test(x, y, alternative, conf.int = TRUE, conf.level) returns,
// including the continuity correction R applies by default.
//
// With the normal approximation the interval ends and the estimate are
// roots of a step function found as R finds them (zeroin with tolerance
// 1e-4), so they agree with R to rounding; any other root finder would
// agree only to about 1e-4.
func WilcoxonTest(x, y []float64, opt WilcoxonOptions) (WilcoxonResult, error) {
	if len(x) == 0 || len(y) == 0 {
		return WilcoxonResult{}, errors.New("wilcoxon: both samples need at least one value")
	}
	for _, v := range slices.Concat(x, y) {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return WilcoxonResult{}, errors.New("wilcoxon: samples must be finite numbers")
		}
	}
	if opt.ConfLevel == 0 {
		opt.ConfLevel = 0.95
	}
	if !(opt.ConfLevel > 0 && opt.ConfLevel < 1) {
		return WilcoxonResult{}, fmt.Errorf("wilcoxon: confidence level %v is not in (0, 1)", opt.ConfLevel)
	}
	if opt.Alternative < TwoSided || opt.Alternative > Less {
		return WilcoxonResult{}, fmt.Errorf("wilcoxon: unknown alternative %v", opt.Alternative)
	}
	if isConstant(x) && isConstant(y) {
		return WilcoxonResult{}, ErrAllTied
	}
	r := rank(slices.Concat(x, y))
	nx := float64(len(x))
	w := 0.0
	for _, v := range r[:len(x)] {
		w += v
	}
	w -= nx * (nx + 1) / 2
	exact := opt.Method == MethodExact || (opt.Method == MethodAuto && len(x) < 50 && len(y) < 50)
	if exact && !hasTies(r) {
		return exactTest(x, y, w, opt), nil
	}
	return normalTest(x, y, r, w, opt)
}

// exactTest finishes the test with the exact null distribution of W
// (R's pwilcox and qwilcox) and the exact interval from the sorted pairwise
// differences.
func exactTest(x, y []float64, w float64, opt WilcoxonOptions) WilcoxonResult {
	d := newWilcoxDist(len(x), len(y))
	mn := float64(len(x) * len(y))
	res := WilcoxonResult{W: w, Exact: true, ConfLevel: opt.ConfLevel}
	switch opt.Alternative {
	case TwoSided:
		var p float64
		if w > mn/2 {
			p = d.upper(w - 1)
		} else {
			p = d.lower(w)
		}
		res.PValue = math.Min(2*p, 1)
	case Greater:
		res.PValue = d.upper(w - 1)
	case Less:
		res.PValue = d.lower(w)
	}

	diffs := make([]float64, 0, len(x)*len(y))
	for _, xi := range x {
		for _, yj := range y {
			diffs = append(diffs, xi-yj)
		}
	}
	slices.Sort(diffs)
	alpha := 1 - opt.ConfLevel
	// R indexes the sorted differences from 1; qu is at least 1 so the
	// interval always exists, even when it cannot reach the level asked.
	var qu int
	var achieved float64
	switch opt.Alternative {
	case TwoSided:
		qu = max(d.quantile(alpha/2), 1)
		achieved = 2 * d.lower(float64(qu-1))
		res.ConfInt = [2]float64{diffs[qu-1], diffs[len(diffs)-qu]}
	case Greater:
		qu = max(d.quantile(alpha), 1)
		achieved = d.lower(float64(qu - 1))
		res.ConfInt = [2]float64{diffs[qu-1], math.Inf(1)}
	case Less:
		qu = max(d.quantile(alpha), 1)
		achieved = d.lower(float64(qu - 1))
		res.ConfInt = [2]float64{math.Inf(-1), diffs[len(diffs)-qu]}
	}
	if achieved-alpha > alpha/2 {
		res.ConfLevel = 1 - achieved
	}
	res.Estimate = median(diffs)
	return res
}

// normalTest finishes the test with the normal approximation, corrected for
// ties and for continuity, and finds the interval and estimate by root
// finding on the standardised statistic as a function of the shift.
func normalTest(x, y []float64, r []float64, w float64, opt WilcoxonOptions) (WilcoxonResult, error) {
	nx, ny := float64(len(x)), float64(len(y))
	res := WilcoxonResult{W: w, ConfLevel: opt.ConfLevel}
	z := w - nx*ny/2
	z = (z - continuity(z, opt.Alternative)) / rankSigma(r, nx, ny)
	switch opt.Alternative {
	case TwoSided:
		res.PValue = 2 * math.Min(pnorm(z, false), pnorm(z, true))
	case Greater:
		res.PValue = pnorm(z, true)
	case Less:
		res.PValue = pnorm(z, false)
	}
	s := shiftStat{x: x, y: y, buf: make([]float64, len(x)+len(y))}
	var err error
	if res.ConfInt, err = s.interval(opt); err != nil {
		return WilcoxonResult{}, fmt.Errorf("wilcoxon confidence interval: %w", err)
	}
	if res.Estimate, err = s.estimate(); err != nil {
		return WilcoxonResult{}, fmt.Errorf("wilcoxon estimate: %w", err)
	}
	return res, nil
}

// noCorrection stands for "no alternative" where the continuity correction
// depends on one: R drops the correction for the estimate.
const noCorrection Alternative = -1

// continuity returns R's continuity correction for the centred statistic z.
func continuity(z float64, alt Alternative) float64 {
	switch alt {
	case TwoSided:
		switch {
		case z > 0:
			return 0.5
		case z < 0:
			return -0.5
		}
		return 0
	case Greater:
		return 0.5
	case Less:
		return -0.5
	}
	return 0
}

// rankSigma is the standard deviation of W under the null hypothesis,
// reduced for the ties among the ranks r.
func rankSigma(r []float64, nx, ny float64) float64 {
	n := nx + ny
	return math.Sqrt(nx * ny / 12 * ((n + 1) - tieSum(r)/(n*(n-1))))
}

// shiftStat evaluates R's W(d) from wilcox.test: the standardised,
// tie-corrected rank statistic of x - d against y. It falls from positive
// to negative as d grows, so its roots bound the shift.
type shiftStat struct {
	x, y []float64
	buf  []float64
}

func (s shiftStat) at(d float64, alt Alternative) float64 {
	for i, v := range s.x {
		s.buf[i] = v - d
	}
	copy(s.buf[len(s.x):], s.y)
	r := rank(s.buf)
	nx, ny := float64(len(s.x)), float64(len(s.y))
	dz := -nx*(nx+1)/2 - nx*ny/2
	for _, v := range r[:len(s.x)] {
		dz += v
	}
	return (dz - continuity(dz, alt)) / rankSigma(r, nx, ny)
}

// searchRange is where the shift is sought: from the smallest to the
// largest pairwise difference x_i - y_j.
func (s shiftStat) searchRange() (lo, hi float64) {
	return slices.Min(s.x) - slices.Max(s.y), slices.Max(s.x) - slices.Min(s.y)
}

// interval returns the shifts at which the statistic, with R's continuity
// correction, crosses the normal quantiles of the wanted level.
func (s shiftStat) interval(opt WilcoxonOptions) ([2]float64, error) {
	lo, hi := s.searchRange()
	wLo, wHi := s.at(lo, opt.Alternative), s.at(hi, opt.Alternative)
	root := func(zq float64) (float64, error) {
		fLo, fHi := wLo-zq, wHi-zq
		// The statistic falls as the shift grows; when the wanted level is
		// beyond an end of the search range R returns that end.
		if fLo <= 0 {
			return lo, nil
		}
		if fHi >= 0 {
			return hi, nil
		}
		return zeroin(func(d float64) float64 { return s.at(d, opt.Alternative) - zq }, lo, hi, fLo, fHi, rootTol, 1000)
	}
	alpha := 1 - opt.ConfLevel
	var ci [2]float64
	var err1, err2 error
	switch opt.Alternative {
	case TwoSided:
		ci[0], err1 = root(-qnorm(alpha / 2))
		ci[1], err2 = root(qnorm(alpha / 2))
	case Greater:
		ci[0], err1 = root(-qnorm(alpha))
		ci[1] = math.Inf(1)
	case Less:
		ci[0] = math.Inf(-1)
		ci[1], err2 = root(qnorm(alpha))
	}
	return ci, errors.Join(err1, err2)
}

// estimate returns the shift at which the statistic without continuity
// correction is zero, R's Hodges-Lehmann estimate for this branch.
func (s shiftStat) estimate() (float64, error) {
	lo, hi := s.searchRange()
	f := func(d float64) float64 { return s.at(d, noCorrection) }
	fLo, fHi := f(lo), f(hi)
	if math.Signbit(fLo) == math.Signbit(fHi) && fLo != 0 && fHi != 0 {
		return 0, errors.New("no sign change over the range of differences")
	}
	return zeroin(f, lo, hi, fLo, fHi, rootTol, 1000)
}

// rank returns the ranks of v, 1-based, ties sharing their average rank
// (R's rank with ties.method = "average").
func rank(v []float64) []float64 {
	idx := make([]int, len(v))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int {
		switch {
		case v[a] < v[b]:
			return -1
		case v[a] > v[b]:
			return 1
		}
		return 0
	})
	r := make([]float64, len(v))
	for i := 0; i < len(idx); {
		j := i + 1
		for j < len(idx) && v[idx[j]] == v[idx[i]] {
			j++
		}
		avg := float64(i+j+1) / 2 // mean of ranks i+1 .. j
		for k := i; k < j; k++ {
			r[idx[k]] = avg
		}
		i = j
	}
	return r
}

// tieSum returns the sum of t^3 - t over the groups of t tied ranks.
func tieSum(r []float64) float64 {
	s := slices.Clone(r)
	slices.Sort(s)
	sum := 0.0
	for i := 0; i < len(s); {
		j := i + 1
		for j < len(s) && s[j] == s[i] {
			j++
		}
		t := float64(j - i)
		sum += t*t*t - t
		i = j
	}
	return sum
}

// hasTies reports whether any two ranks are equal.
func hasTies(r []float64) bool {
	s := slices.Clone(r)
	slices.Sort(s)
	for i := 1; i < len(s); i++ {
		if s[i] == s[i-1] {
			return true
		}
	}
	return false
}

func isConstant(v []float64) bool {
	for _, x := range v[1:] {
		if x != v[0] {
			return false
		}
	}
	return true
}

// median returns the median of sorted values.
func median(sorted []float64) float64 {
	n := len(sorted)
	if n%2 == 1 {
		return sorted[n/2]
	}
	return (sorted[n/2-1] + sorted[n/2]) / 2
}
