// Package metric holds the providers that measure analysis metrics, one
// file each.
package metric

import (
	"context"
	"fmt"
	"sync"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/analysis"
	"github.com/pipit-dev/pipit/internal/proxy"
)

// Builtin metric names: what the built-in proxy measures per version. Rates
// are percent (0 to 100), latencies milliseconds, request-count a count over
// the window between two checks.
const (
	RequestSuccessRate = "request-success-rate"
	ErrorRate          = "error-rate"
	RequestCount       = "request-count"
	LatencyMean        = "latency-mean"
	LatencyP50         = "latency-p50"
	LatencyP95         = "latency-p95"
	LatencyP99         = "latency-p99"
	// RequestDuration is the p99 latency, named as Flagger names it.
	RequestDuration = "request-duration"
)

// BuiltinNames lists the builtin metrics, for validation and docs.
var BuiltinNames = []string{RequestSuccessRate, ErrorRate, RequestCount, LatencyMean, LatencyP50, LatencyP95, LatencyP99, RequestDuration}

// StatsSource is where the builtin provider reads cumulative measurements:
// the built-in proxy.
type StatsSource interface {
	Stats() proxy.Stats
}

// Builtin measures the proxy's own per-version metrics over the window
// since its previous measurement.
type Builtin struct {
	src  StatsSource
	mu   sync.Mutex
	prev proxy.Stats
}

// NewBuiltin returns a provider whose first window starts now.
func NewBuiltin(src StatsSource) *Builtin { return &Builtin{src: src, prev: src.Stats()} }

// Measure measures every metric over the window since the last call and
// starts a new window.
func (b *Builtin) Measure(_ context.Context, metrics []v1alpha1.MetricSpec) []analysis.Measurement {
	b.mu.Lock()
	now := b.src.Stats()
	window := now.Since(b.prev)
	b.prev = now
	b.mu.Unlock()
	out := make([]analysis.Measurement, 0, len(metrics))
	for _, m := range metrics {
		out = append(out, Compute(m.Name, window))
	}
	return out
}

// Window returns the measurements since the last Measure without starting
// a new window, for live views.
func (b *Builtin) Window() proxy.Stats {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.src.Stats().Since(b.prev)
}

// Reset starts a new window now, so a new canary is judged on its own
// traffic only.
func (b *Builtin) Reset() {
	b.mu.Lock()
	b.prev = b.src.Stats()
	b.mu.Unlock()
}

// Compute derives one builtin metric for both versions from a window.
func Compute(name string, w proxy.Stats) analysis.Measurement {
	m := analysis.Measurement{Metric: name}
	f, err := valueOf(name)
	if err != nil {
		m.Err = err
		return m
	}
	m.Canary = f(w.Canary)
	m.Stable = f(w.Stable)
	return m
}

func valueOf(name string) (func(proxy.VersionStats) *float64, error) {
	wrap := func(get func(proxy.VersionStats) (float64, bool)) func(proxy.VersionStats) *float64 {
		return func(v proxy.VersionStats) *float64 {
			if x, ok := get(v); ok {
				return &x
			}
			return nil
		}
	}
	quantile := func(q float64) func(proxy.VersionStats) *float64 {
		return wrap(func(v proxy.VersionStats) (float64, bool) { return v.Quantile(q) })
	}
	switch name {
	case RequestSuccessRate:
		return wrap(proxy.VersionStats.SuccessRate), nil
	case ErrorRate:
		return wrap(proxy.VersionStats.ErrorRate), nil
	case RequestCount:
		// A count is never "no data": zero requests is the measurement.
		return func(v proxy.VersionStats) *float64 { x := float64(v.Requests); return &x }, nil
	case LatencyMean:
		return wrap(proxy.VersionStats.Mean), nil
	case LatencyP50:
		return quantile(0.50), nil
	case LatencyP95:
		return quantile(0.95), nil
	case LatencyP99, RequestDuration:
		return quantile(0.99), nil
	}
	return nil, fmt.Errorf("unknown builtin metric %q", name)
}
