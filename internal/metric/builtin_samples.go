package metric

import (
	"iter"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/pipit-dev/pipit/internal/traffic"
)

// A compared builtin metric is judged on samples of each version, and the
// samples must be alike for the comparison to be fair. Per-second values
// are not: at a 5% weight the canary's second holds a handful of requests
// and the stable's a hundred, and the p99 of five requests is about their
// largest, far below the p99 of a hundred, so an unchanged canary looks
// faster and, with the default direction "either", fails. (Kayenta avoids
// it with a baseline deployment as small as the canary.) So each version's
// requests are drawn in random order and cut into groups of the same size
// on both sides, and a sample is the metric computed on one group.

// MaxSamples bounds the samples of one version in one comparison: the
// comparison's cost grows with their number (a few milliseconds at this
// bound), and the stable version usually has far more requests than the
// canary.
const MaxSamples = 200

// maxGroupSize bounds the growth of groups, and so the requests drawn per
// version (100,000), which bounds a comparison's cost however busy the
// service: a check then costs tens of milliseconds per compared metric.
const maxGroupSize = 500

// GroupSize is how many requests make one sample of the builtin metric
// name when the canary served canaryRequests. It is at least the metric's
// minimum: one for the mean; for a quantile, enough for a group's quantile
// to be steadier than a single request and to reach into the tail that
// the metric names (20 stands for p95 and p99 alike, so that a canary with
// a few hundred requests still gives some samples); enough for an error
// rate to be above zero now and then. Past MaxSamples groups of the
// canary's requests it grows, so that every request of the canary counts,
// up to maxGroupSize. Zero means the metric has no samples: a request
// count is the version's weight, not its behaviour.
func GroupSize(name string, canaryRequests uint64) int {
	least := 0
	switch name {
	case LatencyMean:
		least = 1
	case LatencyP50:
		least = 10
	case LatencyP95, LatencyP99, RequestDuration:
		least = 20
	case ErrorRate, RequestSuccessRate:
		least = 50
	default:
		return 0
	}
	return max(least, min(maxGroupSize, int((canaryRequests+MaxSamples-1)/MaxSamples)))
}

// requestSamples returns the samples of a builtin metric over a version's
// requests, in groups of k (see Samples).
func requestSamples(name string, k int, v traffic.VersionStats) []float64 {
	switch name {
	case ErrorRate:
		return Samples(name, k, outcomes(v, 100, 0))
	case RequestSuccessRate:
		return Samples(name, k, outcomes(v, 0, 100))
	}
	return Samples(name, k, v.Latencies())
}

// Samples cuts requests into groups of k, drawn in random order, at most
// MaxSamples of them, and returns the builtin metric name computed on each
// group. values describes the requests, each value repeated as often as
// counted: latencies in milliseconds for a latency metric, 100 for a
// failed request and 0 for another for error-rate (the other way round for
// request-success-rate). Fewer requests than one group give no samples.
func Samples(name string, k int, values iter.Seq2[float64, uint64]) []float64 {
	stat := meanOf
	switch name {
	case LatencyP50:
		stat = quantileOf(0.5)
	case LatencyP95:
		stat = quantileOf(0.95)
	case LatencyP99, RequestDuration:
		stat = quantileOf(0.99)
	}
	if k <= 0 {
		return nil
	}
	n := total(values)
	m := min(n, uint64(MaxSamples*k))
	m -= m % uint64(k)
	if m == 0 {
		return nil
	}
	// Seeded by the window itself: the same requests give the same samples.
	rng := rand.New(rand.NewPCG(n, uint64(k)))
	drawn := draw(values, n, m, rng)
	samples := make([]float64, 0, len(drawn)/k)
	for group := range slices.Chunk(drawn, k) {
		samples = append(samples, stat(group))
	}
	return samples
}

// outcomes describes each request by its outcome: bad for a failed one
// (5xx, or no answer from the upstream), good otherwise.
func outcomes(v traffic.VersionStats, bad, good float64) iter.Seq2[float64, uint64] {
	failed := v.Errors5xx + v.TransportErrors
	return func(yield func(float64, uint64) bool) {
		if failed > 0 && !yield(bad, failed) {
			return
		}
		if v.Requests > failed {
			yield(good, v.Requests-failed)
		}
	}
}

func total(values iter.Seq2[float64, uint64]) uint64 {
	var n uint64
	for _, c := range values {
		n += c
	}
	return n
}

// draw picks m of the n values (each value repeated as often as counted)
// and returns them in random order. Up to a few times m they are picked
// without replacement, every set of m equally likely (Knuth's selection
// sampling), so that a version's groups share no request; from more, the
// picks are independent, which makes no difference at that size and costs
// m rather than n steps.
func draw(values iter.Seq2[float64, uint64], n, m uint64, rng *rand.Rand) []float64 {
	out := make([]float64, 0, m)
	if n <= 8*m {
		var seen uint64
		for v, c := range values {
			for range c {
				if rng.Uint64N(n-seen) < m-uint64(len(out)) {
					out = append(out, v)
				}
				seen++
			}
		}
	} else {
		type bucket struct {
			value float64
			below uint64 // the values before this bucket
		}
		var buckets []bucket
		var below uint64
		for v, c := range values {
			buckets = append(buckets, bucket{v, below})
			below += c
		}
		for range m {
			r := rng.Uint64N(n)
			i, _ := slices.BinarySearchFunc(buckets, r, func(b bucket, r uint64) int {
				if b.below > r {
					return 1
				}
				return -1
			})
			out = append(out, buckets[i-1].value)
		}
	}
	rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

func meanOf(x []float64) float64 {
	var sum float64
	for _, v := range x {
		sum += v
	}
	return sum / float64(len(x))
}

// quantileOf returns the q-quantile of a group, interpolated between the
// two values around it (R's default, type 7). It sorts the group.
func quantileOf(q float64) func([]float64) float64 {
	return func(x []float64) float64 {
		slices.Sort(x)
		h := q * float64(len(x)-1)
		lo := int(math.Floor(h))
		if lo+1 >= len(x) {
			return x[len(x)-1]
		}
		return x[lo] + (h-float64(lo))*(x[lo+1]-x[lo])
	}
}
