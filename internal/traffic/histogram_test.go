package traffic

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestBucketsTileTheRange(t *testing.T) {
	prevUpper := time.Duration(0)
	for i := range histBuckets - 1 {
		lower, upper := bucketBounds(i)
		if lower != prevUpper {
			t.Fatalf("bucket %d starts at %v, previous ended at %v", i, lower, prevUpper)
		}
		if bucketOf(lower) != i || bucketOf(upper-1) != i {
			t.Fatalf("bucket %d [%v, %v): bucketOf gives %d and %d", i, lower, upper, bucketOf(lower), bucketOf(upper-1))
		}
		if i > 0 && float64(upper-lower) > 0.05*float64(lower)+0.5 {
			t.Fatalf("bucket %d [%v, %v) wider than 5%%", i, lower, upper)
		}
		prevUpper = upper
	}
	if last, _ := bucketBounds(histBuckets - 1); last != prevUpper || bucketOf(time.Hour) != histBuckets-1 {
		t.Fatalf("overflow bucket starts at %v, want %v", last, prevUpper)
	}
}

// orderStat is the k-th smallest sample with k = ceil(q·n), the sample
// the histogram's quantile falls next to.
func orderStat(sorted []time.Duration, q float64) time.Duration {
	k := max(int(math.Ceil(q*float64(len(sorted)))), 1)
	return sorted[k-1]
}

func TestQuantilesWithinFivePercent(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	ms := func(f float64) time.Duration { return time.Duration(f * float64(time.Millisecond)) }
	for name, draw := range map[string]func() time.Duration{
		"lognormal around 20ms": func() time.Duration { return ms(20 * math.Exp(0.6*rng.NormFloat64())) },
		"uniform 1-100ms":       func() time.Duration { return ms(1 + 99*rng.Float64()) },
		"exponential mean 3ms":  func() time.Duration { return ms(3 * rng.ExpFloat64()) },
		"bimodal 150µs / 2s": func() time.Duration {
			if rng.IntN(10) == 0 {
				return ms(2000 + 50*rng.Float64())
			}
			return ms(0.15 + 0.01*rng.Float64())
		},
		"constant 42ms": func() time.Duration { return ms(42) },
	} {
		var h histogram
		samples := make([]time.Duration, 20_000)
		var sum time.Duration
		for i := range samples {
			samples[i] = draw()
			sum += samples[i]
			h.record(samples[i])
		}
		slices.Sort(samples)
		l := h.snapshot()
		vs := VersionStats{latency: l}
		for _, q := range []float64{0.5, 0.9, 0.95, 0.99, 0.999} {
			got, ok := vs.Quantile(q)
			want := float64(orderStat(samples, q)) / 1e6
			if !ok || math.Abs(got-want) > 0.05*want {
				t.Errorf("%s: p%v = %.4fms, exact %.4fms", name, q*100, got, want)
			}
		}
		mean, _ := vs.Mean()
		if want := float64(sum) / float64(len(samples)) / 1e6; math.Abs(mean-want) > 1e-9*want {
			t.Errorf("%s: mean %vms, exact %vms", name, mean, want)
		}
	}
}

func TestQuantileRefusesNonsense(t *testing.T) {
	var h histogram
	h.record(time.Millisecond)
	vs := VersionStats{latency: h.snapshot()}
	for _, q := range []float64{-0.1, 1.5, math.NaN()} {
		if _, ok := vs.Quantile(q); ok {
			t.Errorf("Quantile(%v) reported ok", q)
		}
	}
}

func TestLatenciesDescribeEachRequest(t *testing.T) {
	c := NewCounters("v1", 1)
	recorded := []time.Duration{3 * time.Millisecond, 3 * time.Millisecond, 250 * time.Microsecond, 2 * time.Second, 5 * time.Microsecond}
	for _, d := range recorded {
		c.Record(Class2xx, d)
	}
	var values []float64
	for ms, n := range c.Snapshot().Latencies() {
		for range n {
			values = append(values, ms)
		}
	}
	want := slices.Clone(recorded)
	slices.Sort(want)
	if len(values) != len(want) {
		t.Fatalf("Latencies described %d requests, want %d: %v", len(values), len(want), values)
	}
	for i, d := range want {
		ms := float64(d) / 1e6
		if math.Abs(values[i]-ms) > 0.05*ms+0.005 { // the first bucket is 0 to 10µs wide
			t.Errorf("request %d: %vms, want %vms within 5%%", i, values[i], ms)
		}
	}
	stops := 0
	for range c.Snapshot().Latencies() {
		stops++
		break
	}
	if stops != 1 {
		t.Errorf("Latencies went on after its consumer stopped")
	}
}

func TestExportBoundsAreBucketEdges(t *testing.T) {
	for _, b := range ExportBounds {
		d := time.Duration(math.Round(b * float64(time.Second)))
		if !isBucketEdge(d) {
			t.Errorf("bound %vs is inside a bucket of the latency histogram", b)
		}
	}
	if isBucketEdge(1234567 * time.Nanosecond) {
		t.Error("1.234567ms is inside a bucket, yet isBucketEdge says it is an edge")
	}
}

// isBucketEdge reports whether d is the lower edge of a bucket of the
// latency histogram, so that counts below it are exact.
func isBucketEdge(d time.Duration) bool {
	lower, _ := bucketBounds(bucketOf(d))
	return lower == d
}
