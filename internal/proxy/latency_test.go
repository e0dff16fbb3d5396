package proxy

import (
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/pipit-dev/pipit/internal/testenv/nettest"
)

// orderStat is the k-th smallest sample with k = ceil(q·n), the sample
// the histogram's quantile falls next to.
func orderStat(sorted []time.Duration, q float64) time.Duration {
	k := max(int(math.Ceil(q*float64(len(sorted)))), 1)
	return sorted[k-1]
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
	p := newProxy(t, Config{Stable: Upstream{Version: "v1", URL: nettest.MustURL(t, up.URL)}})
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
