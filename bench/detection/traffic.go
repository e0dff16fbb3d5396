package main

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// scenario is how the canary behaves compared with the stable version,
// from the moment it first receives traffic.
type scenario struct {
	name string
	// errorDelta is added to the stable's error rate, in percentage points.
	errorDelta float64
	// latencyFactor multiplies every latency; 1 leaves it unchanged.
	latencyFactor float64
}

// healthy reports whether the canary behaves like the stable version.
func (s scenario) healthy() bool { return s.errorDelta == 0 && s.latencyFactor == 1 }

// scenarios are the issue's: a healthy canary, error regressions of 1, 2,
// 5 and 20 points, and latency regressions of 1.2, 1.5 and 2 times.
var scenarios = []scenario{
	{name: "healthy", latencyFactor: 1},
	{name: "errors +1pt", errorDelta: 1, latencyFactor: 1},
	{name: "errors +2pt", errorDelta: 2, latencyFactor: 1},
	{name: "errors +5pt", errorDelta: 5, latencyFactor: 1},
	{name: "errors +20pt", errorDelta: 20, latencyFactor: 1},
	{name: "latency x1.2", latencyFactor: 1.2},
	{name: "latency x1.5", latencyFactor: 1.5},
	{name: "latency x2", latencyFactor: 2},
}

// traffic describes the requests both versions receive: Poisson arrivals
// at Rate in all, each failing with the version's error rate, and
// log-normal latencies.
type traffic struct {
	Rate float64 // requests per second, both versions together
	// Baseline is the stable's error rate in percent; the canary's is
	// Baseline plus the scenario's errorDelta.
	Baseline float64
	// LatencyMedian (ms) and LatencySigma (of the log) give the stable's
	// log-normal latencies; the canary's are scaled by latencyFactor.
	LatencyMedian, LatencySigma float64
}

// latencyQuantile returns the q-quantile of the stable's latency in ms.
func (t traffic) latencyQuantile(q float64) float64 {
	return t.LatencyMedian * math.Exp(t.LatencySigma*normalQuantile(q))
}

func (t traffic) String() string {
	return fmt.Sprintf("stable error rate %g%%; latency log-normal, median %g ms, sigma %g (p95 %.0f ms, p99 %.0f ms)",
		t.Baseline, t.LatencyMedian, t.LatencySigma, t.latencyQuantile(0.95), t.latencyQuantile(0.99))
}

// second is the traffic of one simulated second.
type second struct {
	canaryN, canaryErrors uint64
	stableN, stableErrors uint64
	// canaryLatencies are the canary's requests' latencies in ms, each
	// drawn, so that any quantile of any window can be taken from them.
	canaryLatencies []float64
}

// draw simulates one second at canary weight w (a fraction), reusing the
// latency slice of into.
func (t traffic) draw(rng *rand.Rand, sc scenario, w float64, into *second) {
	lat := into.canaryLatencies[:0]
	canaryRate := (t.Baseline + sc.errorDelta) / 100
	into.canaryN = poisson(rng, t.Rate*w)
	into.canaryErrors = 0
	for range into.canaryN {
		if rng.Float64() < canaryRate {
			into.canaryErrors++
		}
		lat = append(lat, sc.latencyFactor*t.LatencyMedian*math.Exp(t.LatencySigma*rng.NormFloat64()))
	}
	into.canaryLatencies = lat
	// Thinning: the stable's failed and successful requests are two
	// independent Poisson streams, which is the same as Poisson arrivals
	// that each fail with the baseline rate.
	stableRate := t.Rate * (1 - w)
	into.stableErrors = poisson(rng, stableRate*t.Baseline/100)
	into.stableN = into.stableErrors + poisson(rng, stableRate*(1-t.Baseline/100))
}

// stableLatencies appends n latencies of the stable version (ms) to into.
// The stable's requests are not drawn one by one each second, as they are
// many; a comparison takes a bounded number of them, drawn when needed.
func (t traffic) stableLatencies(rng *rand.Rand, n uint64, into []float64) []float64 {
	for range n {
		into = append(into, t.LatencyMedian*math.Exp(t.LatencySigma*rng.NormFloat64()))
	}
	return into
}

// orderRank is the rank (1-based) of the order statistic that the proxy's
// histogram reports as the q-quantile of n values: the first value whose
// cumulative count reaches q·n.
func orderRank(q float64, n int) int {
	return max(1, int(math.Ceil(q*float64(n))))
}

// quantileOf returns the q-quantile of sorted values by orderRank; ok is
// false when there are none.
func quantileOf(sorted []float64, q float64) (float64, bool) {
	if len(sorted) == 0 {
		return 0, false
	}
	return sorted[orderRank(q, len(sorted))-1], true
}

// normalQuantile is the standard normal quantile function.
func normalQuantile(p float64) float64 { return -math.Sqrt2 * math.Erfcinv(2*p) }

// poisson draws a Poisson variate with the given mean: by multiplying
// uniforms for small means, by Hörmann's transformed rejection (PTRS) for
// large ones, both exact.
func poisson(rng *rand.Rand, mean float64) uint64 {
	if mean <= 0 {
		return 0
	}
	if mean < 10 {
		limit, p := math.Exp(-mean), rng.Float64()
		var k uint64
		for p > limit {
			k++
			p *= rng.Float64()
		}
		return k
	}
	logMean := math.Log(mean)
	b := 0.931 + 2.53*math.Sqrt(mean)
	a := -0.059 + 0.02483*b
	invAlpha := 1.1239 + 1.1328/(b-3.4)
	vr := 0.9277 - 3.6224/(b-2)
	for {
		u := rng.Float64() - 0.5
		v := rng.Float64()
		us := 0.5 - math.Abs(u)
		k := math.Floor((2*a/us+b)*u + mean + 0.43)
		if us >= 0.07 && v <= vr {
			return uint64(k)
		}
		if k < 0 || (us < 0.013 && v > us) {
			continue
		}
		lg, _ := math.Lgamma(k + 1)
		if math.Log(v)+math.Log(invAlpha)-math.Log(a/(us*us)+b) <= -mean+k*logMean-lg {
			return uint64(k)
		}
	}
}
