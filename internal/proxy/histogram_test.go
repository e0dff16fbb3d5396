package proxy

import (
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
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

func TestPrometheusBoundsAreBucketEdges(t *testing.T) {
	for _, b := range promBounds {
		d := time.Duration(math.Round(b * float64(time.Second)))
		if lower, _ := bucketBounds(bucketOf(d)); lower != d {
			t.Errorf("bound %vs is inside a bucket starting at %v", b, lower)
		}
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

// TestProxyMeasuresKnownDelays checks the proxy's latency quantiles end to
// end. Each request's true latency lies between the delay the upstream
// was told to wait and what the client measured, so each estimate must lie
// between those two bounds' order statistics, give or take 5%.
func TestProxyMeasuresKnownDelays(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d, _ := time.ParseDuration(r.URL.Query().Get("delay"))
		time.Sleep(d)
	}))
	defer up.Close()
	p := newProxy(t, Config{Stable: Upstream{Version: "v1", URL: mustURL(t, up.URL)}})
	url := front(t, p)

	var delays []time.Duration
	for i := range 40 {
		switch {
		case i < 20:
			delays = append(delays, 5*time.Millisecond)
		case i < 36:
			delays = append(delays, 20*time.Millisecond)
		default:
			delays = append(delays, 60*time.Millisecond)
		}
	}
	client := &http.Client{}
	seen := make([]time.Duration, len(delays))
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := w; i < len(delays); i += 4 {
				start := time.Now()
				if code, _, _ := get(t, client, url+"?delay="+delays[i].String()); code != http.StatusOK {
					t.Errorf("status %d", code)
				}
				seen[i] = time.Since(start)
			}
		})
	}
	wg.Wait()
	slices.Sort(seen)

	s := settled(t, p, uint64(len(delays))).Stable
	// Ranks 10, 30 and 38 of 40 fall inside the three groups of delays.
	for _, q := range []float64{0.25, 0.75, 0.95} {
		got, ok := s.Quantile(q)
		lo, hi := float64(orderStat(delays, q))/1e6, float64(orderStat(seen, q))/1e6
		if !ok || got < 0.95*lo || got > 1.05*hi {
			t.Errorf("p%v = %.2fms, want between %.2fms and %.2fms", q*100, got, lo, hi)
		}
	}
	var sumDelay, sumSeen time.Duration
	for i := range delays {
		sumDelay += delays[i]
		sumSeen += seen[i]
	}
	n := float64(len(delays)) * 1e6
	if mean, _ := s.Mean(); mean < float64(sumDelay)/n || mean > float64(sumSeen)/n {
		t.Errorf("mean %.2fms, want between %.2fms and %.2fms", mean, float64(sumDelay)/n, float64(sumSeen)/n)
	}
}

func TestLatenciesDescribeEachRequest(t *testing.T) {
	c := newCounters("v1", 1)
	recorded := []time.Duration{3 * time.Millisecond, 3 * time.Millisecond, 250 * time.Microsecond, 2 * time.Second, 5 * time.Microsecond}
	for _, d := range recorded {
		c.record(class2xx, d)
	}
	var values []float64
	for ms, n := range c.snapshot().Latencies() {
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
	for range c.snapshot().Latencies() {
		stops++
		break
	}
	if stops != 1 {
		t.Errorf("Latencies went on after its consumer stopped")
	}
}
