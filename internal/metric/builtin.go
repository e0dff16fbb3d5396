// Package metric holds the providers that measure analysis metrics, one
// file each, and the Set that measures a rollout's metrics with them.
package metric

import (
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/pipit-dev/pipit/internal/rollout"
	"github.com/pipit-dev/pipit/internal/spec"
	"github.com/pipit-dev/pipit/internal/traffic"
)

// Builtin metric names: what the built-in proxy measures per version. Rates
// are percent (0 to 100), latencies milliseconds, request-count a count over
// the window between two checks. CPUUsage and MemoryUsage are measured on
// the processes of a process target instead (see UsageSource).
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
	// ConversionRate is the share of a version's users, in percent, who
	// reached the first goal of spec.analysis.goals since the canary was
	// deployed; ConversionRate + ":" + NAME is the goal NAME's.
	ConversionRate = spec.MetricConversionRate
	// CPUUsage is in % of one core, summed over a version's replicas.
	CPUUsage = spec.MetricCPUUsage
	// MemoryUsage is resident memory in % of a version's stated limit.
	MemoryUsage = spec.MetricMemoryUsage
)

// proxyNames are the builtin metrics the proxy measures.
var proxyNames = []string{RequestSuccessRate, ErrorRate, RequestCount, LatencyMean, LatencyP50, LatencyP95, LatencyP99, RequestDuration, ConversionRate}

// BuiltinNames lists the builtin metrics this package measures; spec keeps
// the list it validates against, and a test of spec checks the two agree.
var BuiltinNames = append(slices.Clip(proxyNames), CPUUsage, MemoryUsage)

// IsTrafficMetric reports whether name is a builtin metric of the traffic
// (the proxy's in standalone mode, the router's series in a cluster).
func IsTrafficMetric(name string) bool { return slices.Contains(proxyNames, name) }

// StatsSource is where the builtin provider reads cumulative measurements:
// the built-in proxy (*proxy.Proxy satisfies it), or anything else that
// counts traffic per version.
type StatsSource interface {
	Stats() traffic.Stats
}

// Builtin measures the proxy's own per-version metrics over the window
// since its previous measurement. For the metrics compared canary against
// stable it adds samples of each version's requests since the canary was
// deployed (see Samples): a growing window, Spinnaker's default lookback,
// so that each check judges on more evidence than the last, and a chance
// excursion of one short window does not roll a healthy canary back.
type Builtin struct {
	src   StatsSource
	clock rollout.Clock

	mu     sync.Mutex
	prev   traffic.Stats // at the last Measure: the window's start
	since  time.Time     // when prev was taken
	origin traffic.Stats // when the canary was deployed: the samples' start
}

// NewBuiltin returns a provider whose first window starts now on clock
// (nil is the wall clock).
func NewBuiltin(src StatsSource, clock rollout.Clock) *Builtin {
	clock = rollout.ClockOrSystem(clock)
	now := src.Stats()
	return &Builtin{src: src, clock: clock, prev: now, since: clock.Now(), origin: now}
}

// Measure measures every metric over the window since the last call, adds
// the samples since the canary was deployed to those compared canary
// against stable, and starts a new window.
func (b *Builtin) Measure(metrics []spec.PlanMetric) []rollout.Measurement {
	b.mu.Lock()
	now := b.src.Stats()
	window, sampled := now.Since(b.prev), now.Since(b.origin)
	b.prev, b.since = now, b.clock.Now()
	b.mu.Unlock()
	out := make([]rollout.Measurement, 0, len(metrics))
	for _, pm := range metrics {
		if _, conv := spec.ConversionGoal(pm.Name); conv {
			// A user converts at some point after their first visit,
			// not within one window: the rate counts every user since the
			// canary was set, when the source's visits start over (the
			// proxy's do), and no window is cut out of them, which could
			// count the conversions of users first seen before it.
			out = append(out, conversions(pm.Name, now))
			continue
		}
		m := Compute(pm.Name, window)
		if pm.Compare != nil {
			k := GroupSize(pm.Name, sampled.Canary.Requests)
			m.CanarySamples, m.StableSamples = requestSamples(pm.Name, k, sampled.Canary), requestSamples(pm.Name, k, sampled.Stable)
		}
		out = append(out, m)
	}
	return out
}

// Window returns the measurements since the last Measure, and when that
// was, without starting a new window: for live views.
func (b *Builtin) Window() (traffic.Stats, time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.src.Stats().Since(b.prev), b.since
}

// Reset starts a new window and new samples now, so a new canary is judged
// on its own traffic only.
func (b *Builtin) Reset() {
	b.mu.Lock()
	b.prev, b.since = b.src.Stats(), b.clock.Now()
	b.origin = b.prev
	b.mu.Unlock()
}

// Compute derives one builtin metric for both versions from a window.
func Compute(name string, w traffic.Stats) rollout.Measurement {
	m := rollout.Measurement{Metric: name}
	f, err := valueOf(name)
	if err != nil {
		m.Err = err
		return m
	}
	m.Canary = f(w.Canary)
	m.Stable = f(w.Stable)
	return m
}

// conversions measures the conversion metric name on w, with the counts
// of users behind each version's rate.
func conversions(name string, w traffic.Stats) rollout.Measurement {
	m := Compute(name, w)
	goal, _ := spec.ConversionGoal(name)
	users := func(v traffic.VersionStats) *rollout.Conversions {
		n, ok := v.Conversions(goal)
		if !ok {
			return nil
		}
		return &rollout.Conversions{Converted: n, Visitors: v.Visitors()}
	}
	m.CanaryUsers, m.StableUsers = users(w.Canary), users(w.Stable)
	return m
}

func valueOf(name string) (func(traffic.VersionStats) *float64, error) {
	wrap := func(get func(traffic.VersionStats) (float64, bool)) func(traffic.VersionStats) *float64 {
		return func(v traffic.VersionStats) *float64 {
			if x, ok := get(v); ok {
				return &x
			}
			return nil
		}
	}
	quantile := func(q float64) func(traffic.VersionStats) *float64 {
		return wrap(func(v traffic.VersionStats) (float64, bool) { return v.Quantile(q) })
	}
	switch name {
	case RequestSuccessRate:
		return wrap(traffic.VersionStats.SuccessRate), nil
	case ErrorRate:
		return wrap(traffic.VersionStats.ErrorRate), nil
	case RequestCount:
		// A count is never "no data": zero requests is the measurement.
		return func(v traffic.VersionStats) *float64 { x := float64(v.Requests); return &x }, nil
	case LatencyMean:
		return wrap(traffic.VersionStats.Mean), nil
	case LatencyP50:
		return quantile(0.50), nil
	case LatencyP95:
		return quantile(0.95), nil
	case LatencyP99, RequestDuration:
		return quantile(0.99), nil
	}
	if goal, ok := spec.ConversionGoal(name); ok {
		return wrap(func(v traffic.VersionStats) (float64, bool) { return v.ConversionRate(goal) }), nil
	}
	return nil, fmt.Errorf("unknown builtin metric %q", name)
}
