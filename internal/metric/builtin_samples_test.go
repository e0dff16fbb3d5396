package metric

import (
	"iter"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/analysis"
	"github.com/pipit-dev/pipit/internal/rollout"
	"github.com/pipit-dev/pipit/internal/traffic"
)

// requests yields n latencies in milliseconds, log-normal around 20ms and
// slowed by factor, each counted once.
func requests(rng *rand.Rand, n int, factor float64) iter.Seq2[float64, uint64] {
	ms := make([]float64, n)
	for i := range ms {
		ms[i] = factor * math.Exp(3+0.5*rng.NormFloat64())
	}
	slices.Sort(ms)
	return func(yield func(float64, uint64) bool) {
		for _, v := range ms {
			if !yield(v, 1) {
				return
			}
		}
	}
}

// At a 5% weight the canary serves a twentieth of the stable's requests.
// Compared on samples of equal groups of requests, an unchanged canary
// must pass about as often as the confidence level says, and a slower one
// must be found slower. (Compared per second, as pipit used to, an
// unchanged canary's p99 came out lower than the stable's in every trial,
// and the default direction "either" failed it.)
func TestComparedLatencyIsFairAtASmallWeight(t *testing.T) {
	const trials, canaryN, stableN = 40, 300, 5700
	for _, c := range []struct {
		metric     string
		slower     float64
		wantHighAt int // of the trials, at least
	}{
		{LatencyP99, 1.3, 25},
		{LatencyP95, 1.3, 25},
		{LatencyP50, 1.15, 25},
		{LatencyMean, 1.15, 25},
	} {
		k := GroupSize(c.metric, canaryN)
		spec := v1alpha1.MetricSpec{Name: c.metric, Compare: &v1alpha1.CompareSpec{}}
		verdicts := func(factor float64) (failed int) {
			rng := rand.New(rand.NewPCG(uint64(len(c.metric)), uint64(factor*100)))
			for range trials {
				meas := rollout.Measurement{Metric: c.metric,
					CanarySamples: Samples(c.metric, k, requests(rng, canaryN, factor)),
					StableSamples: Samples(c.metric, k, requests(rng, stableN, 1))}
				if r, _ := analysis.Compare(spec, meas, 0.98); r.Verdict == v1alpha1.VerdictFailed {
					failed++
				}
			}
			return failed
		}
		if failed := verdicts(1); failed > 4 {
			t.Errorf("%s: an unchanged canary failed %d of %d comparisons, want at most 4", c.metric, failed, trials)
		}
		if failed := verdicts(c.slower); failed < c.wantHighAt {
			t.Errorf("%s: a canary %v times slower failed only %d of %d comparisons, want at least %d",
				c.metric, c.slower, failed, trials, c.wantHighAt)
		}
	}
}

func TestErrorRateSamplesUseEveryRequestOnce(t *testing.T) {
	v := traffic.VersionStats{Requests: 1000, Errors5xx: 20, TransportErrors: 10}
	k := GroupSize(ErrorRate, v.Requests)
	errs := requestSamples(ErrorRate, k, v)
	if k != 50 || len(errs) != 20 {
		t.Fatalf("%d error-rate samples in groups of %d of 1000 requests, want 20 of 50", len(errs), k)
	}
	// Every request in exactly one group: the groups' mean is the window's rate.
	if got := meanOf(errs); math.Abs(got-3) > 1e-9 {
		t.Errorf("mean of the error-rate samples %v%%, want the window's 3%%", got)
	}
	if got := meanOf(requestSamples(RequestSuccessRate, k, v)); math.Abs(got-97) > 1e-9 {
		t.Errorf("mean of the success-rate samples %v%%, want 97%%", got)
	}
	if s := requestSamples(ErrorRate, k, traffic.VersionStats{Requests: 49}); s != nil {
		t.Errorf("49 requests gave error-rate samples %v; fewer than a group must give none", s)
	}
	if k := GroupSize(RequestCount, 1000); k != 0 {
		t.Errorf("request-count is sampled in groups of %d; a count is the weight's, not to be compared", k)
	}
	// A busy canary: its groups grow so that all its requests count, up to
	// a bound.
	if k := GroupSize(LatencyP50, 50_000); k != 250 {
		t.Errorf("latency-p50 of 50,000 canary requests in groups of %d, want 250", k)
	}
	if k := GroupSize(LatencyP50, 5_000_000); k != maxGroupSize {
		t.Errorf("latency-p50 of 5,000,000 canary requests in groups of %d, want %d", k, maxGroupSize)
	}
}

func TestDrawPicksFromTheValuesInTheirProportions(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	small := func(yield func(float64, uint64) bool) { _ = yield(1, 3) && yield(2, 5) && yield(7, 2) }
	got := draw(small, 10, 10, rng)
	slices.Sort(got)
	if want := []float64{1, 1, 1, 2, 2, 2, 2, 2, 7, 7}; !slices.Equal(got, want) {
		t.Errorf("drawing all 10 values gave %v, want each once: %v", got, want)
	}
	// Far more values than picks: independent picks, in proportion.
	large := func(yield func(float64, uint64) bool) { _ = yield(1, 250_000) && yield(2, 750_000) }
	ones := 0
	for _, v := range draw(large, 1_000_000, 4000, rng) {
		switch v {
		case 1:
			ones++
		case 2:
		default:
			t.Fatalf("drew %v, which is not among the values", v)
		}
	}
	if ones < 900 || ones > 1100 {
		t.Errorf("drew the value holding a quarter of the requests %d times of 4000, want about 1000", ones)
	}
}

func TestGroupQuantileInterpolates(t *testing.T) {
	if got := quantileOf(0.5)([]float64{3, 1}); got != 2 {
		t.Errorf("median of 1 and 3 = %v, want 2", got)
	}
	twenty := make([]float64, 20)
	for i := range twenty {
		twenty[i] = float64(20 - i)
	}
	if got := quantileOf(0.99)(twenty); math.Abs(got-19.81) > 1e-9 {
		t.Errorf("p99 of 1..20 = %v, want 19.81 (R's quantile type 7)", got)
	}
}
