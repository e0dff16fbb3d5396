package stats

import "math"

// pnorm returns the standard normal distribution function at z, or its upper
// tail when upper is set. Computing the wanted tail directly (rather than
// 1 - the other) keeps small p-values accurate.
func pnorm(z float64, upper bool) float64 {
	if upper {
		z = -z
	}
	return 0.5 * math.Erfc(-z/math.Sqrt2)
}

// qnorm returns the standard normal quantile of p in (0, 1). math.Erfinv
// gives a start that is accurate to about 1e-15 near the centre but loses
// digits in the tails, where 2p-1 rounds; two Newton steps on the tail that
// holds p restore full precision.
func qnorm(p float64) float64 {
	switch {
	case p <= 0:
		return math.Inf(-1)
	case p >= 1:
		return math.Inf(1)
	}
	z := math.Sqrt2 * math.Erfinv(2*p-1)
	for range 2 {
		var diff float64
		if z < 0 {
			diff = pnorm(z, false) - p
		} else {
			diff = (1 - p) - pnorm(z, true)
		}
		dens := math.Exp(-z*z/2) / math.Sqrt(2*math.Pi)
		if dens == 0 {
			break
		}
		z -= diff / dens
	}
	return z
}
