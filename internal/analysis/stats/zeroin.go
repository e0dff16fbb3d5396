package stats

import (
	"errors"
	"math"
)

// errNoConvergence reports that zeroin used up its iterations.
var errNoConvergence = errors.New("root finding did not converge")

// zeroin finds a root of f in [a, b] given fa = f(a) and fb = f(b) of
// opposite signs, to within tol. It is Brent's method in the form of R's
// R_zeroin2 (the engine of uniroot), step for step: wilcox.test's confidence
// limits are roots of a step function, so the point returned depends on the
// exact sequence of trial points, and following R's sequence is what lets the
// limits agree with R's to rounding instead of only to tol.
func zeroin(f func(float64) float64, a, b, fa, fb, tol float64, maxIter int) (float64, error) {
	c, fc := a, fa
	if fa == 0 {
		return a, nil
	}
	if fb == 0 {
		return b, nil
	}
	for range maxIter + 1 {
		prevStep := b - a
		if math.Abs(fc) < math.Abs(fb) {
			// Keep b the best approximation so far.
			a, b, c = b, c, b
			fa, fb, fc = fb, fc, fb
		}
		tolAct := 2*eps*math.Abs(b) + tol/2
		newStep := (c - b) / 2
		if math.Abs(newStep) <= tolAct || fb == 0 {
			return b, nil
		}
		// Try interpolation when the last step was big enough and went
		// the right way; otherwise bisect.
		if math.Abs(prevStep) >= tolAct && math.Abs(fa) > math.Abs(fb) {
			var p, q float64
			cb := c - b
			if a == c {
				// Only two distinct points: linear interpolation.
				t1 := fb / fa
				p = cb * t1
				q = 1 - t1
			} else {
				// Inverse quadratic interpolation.
				q = fa / fc
				t1 := fb / fc
				t2 := fb / fa
				p = t2 * (cb*q*(q-t1) - (b-a)*(t1-1))
				q = (q - 1) * (t1 - 1) * (t2 - 1)
			}
			if p > 0 {
				q = -q
			} else {
				p = -p
			}
			if p < 0.75*cb*q-math.Abs(tolAct*q)/2 && p < math.Abs(prevStep*q/2) {
				newStep = p / q
			}
		}
		if math.Abs(newStep) < tolAct {
			if newStep > 0 {
				newStep = tolAct
			} else {
				newStep = -tolAct
			}
		}
		a, fa = b, fb
		b += newStep
		fb = f(b)
		if (fb > 0 && fc > 0) || (fb < 0 && fc < 0) {
			c, fc = a, fa
		}
	}
	return b, errNoConvergence
}

// eps is the float64 machine epsilon (R's DBL_EPSILON).
const eps = 2.220446049250313e-16
