package proxy

import (
	"iter"
	"sync/atomic"
	"time"
)

// codeClass sorts a request's outcome: the class of the upstream's status,
// or classError when the upstream gave no answer.
type codeClass uint8

const (
	class1xx codeClass = iota
	class2xx
	class3xx
	class4xx
	class5xx
	classError
	numClasses
)

var classNames = [numClasses]string{"1xx", "2xx", "3xx", "4xx", "5xx", "error"}

func classOf(code int) codeClass {
	switch {
	case code < 200:
		return class1xx
	case code < 300:
		return class2xx
	case code < 400:
		return class3xx
	case code < 500:
		return class4xx
	}
	return class5xx
}

// counters are the live measurements of one version in one role. They
// only grow; windows are differences of snapshots.
type counters struct {
	version string
	epoch   uint64
	classes [numClasses]atomic.Uint64
	latency histogram
}

func newCounters(version string, epoch uint64) *counters {
	return &counters{version: version, epoch: epoch}
}

// record counts one request. It only adds to atomics: no lock, no
// allocation.
func (c *counters) record(class codeClass, d time.Duration) {
	c.classes[class].Add(1)
	c.latency.record(d)
}

func (c *counters) snapshot() VersionStats {
	s := VersionStats{Version: c.version, epoch: c.epoch, latency: c.latency.snapshot()}
	for i := range c.classes {
		s.classes[i] = c.classes[i].Load()
	}
	s.fill()
	return s
}

// Stats are cumulative measurements per role since each role's version
// was set. Take two and subtract them (Since) for a window.
type Stats struct {
	Stable VersionStats
	Canary VersionStats
}

// Stats returns the cumulative measurements now. A role with no upstream
// (no canary) has zero stats and an empty Version.
//
// Counters belong to a version: when a role's Version changes (a new
// canary), that role starts from zero with a new counter set, and
// requests still in flight to the old version finish into the old set, so
// the two never mix. Since notices the change and counts the window from
// the new version's start.
func (p *Proxy) Stats() Stats {
	t := p.table.Load()
	s := Stats{Stable: t.stable.stats.snapshot()}
	if t.canary != nil {
		s.Canary = t.canary.stats.snapshot()
	}
	return s
}

// Since returns the measurements between prev and s, both taken from the
// same Proxy, prev first.
func (s Stats) Since(prev Stats) Stats {
	return Stats{Stable: s.Stable.since(prev.Stable), Canary: s.Canary.since(prev.Canary)}
}

// VersionStats are the measurements of one version: cumulative from
// Proxy.Stats, or a window from Stats.Since.
type VersionStats struct {
	// Version is the upstream the counters belong to; empty when the role
	// has none.
	Version string
	// Requests is every request counted: answered by the upstream, or
	// failed in transport. Requests that clients abandoned before an
	// answer are not counted.
	Requests uint64
	// Errors5xx is how many answers from the upstream were 5xx.
	Errors5xx uint64
	// TransportErrors is how many requests got no answer from the
	// upstream (refused, reset, timed out, broken off); the client got
	// 502 or 504 from the proxy. They are not in Errors5xx.
	TransportErrors uint64

	epoch   uint64
	classes [numClasses]uint64
	latency latencies
}

func (v *VersionStats) fill() {
	v.Requests = 0
	for _, n := range v.classes {
		v.Requests += n
	}
	v.Errors5xx = v.classes[class5xx]
	v.TransportErrors = v.classes[classError]
}

// since subtracts prev when it holds the same counter set; otherwise the
// version changed in between and v already is the whole window.
func (v VersionStats) since(prev VersionStats) VersionStats {
	if prev.epoch != v.epoch {
		return v
	}
	for i := range v.classes {
		v.classes[i] -= prev.classes[i]
	}
	v.latency = v.latency.minus(prev.latency)
	v.fill()
	return v
}

// ErrorRate is the share of requests, in percent, that failed: 5xx
// answers and transport errors. ok is false when there were no requests;
// no data is not zero.
func (v VersionStats) ErrorRate() (pct float64, ok bool) {
	if v.Requests == 0 {
		return 0, false
	}
	return 100 * float64(v.Errors5xx+v.TransportErrors) / float64(v.Requests), true
}

// SuccessRate is 100 minus ErrorRate: the share of requests answered
// without a 5xx.
func (v VersionStats) SuccessRate() (pct float64, ok bool) {
	e, ok := v.ErrorRate()
	if !ok {
		return 0, false
	}
	return 100 - e, true
}

// Mean is the mean latency in milliseconds, exact (the sum is kept, not
// estimated). Latency runs from the request's arrival to the end of the
// response, as the client saw it.
func (v VersionStats) Mean() (ms float64, ok bool) {
	n := v.latency.total()
	if n == 0 {
		return 0, false
	}
	return float64(v.latency.sumNanos) / float64(n) / 1e6, true
}

// Quantile is the q-quantile of latency (0.99 for p99) in milliseconds,
// within 5% of the exact value. ok is false when there were no requests or
// q is outside 0 to 1.
func (v VersionStats) Quantile(q float64) (ms float64, ok bool) {
	d, ok := v.latency.quantile(q)
	return float64(d) / 1e6, ok
}

// Latencies yields the latency histogram: for each bucket that holds
// requests, in increasing order, its middle in milliseconds and how many
// requests took that long. It describes the requests one by one, as far as
// the buckets tell them apart (5% at most), for analyses that need more
// than a quantile.
func (v VersionStats) Latencies() iter.Seq2[float64, uint64] {
	return func(yield func(float64, uint64) bool) {
		for i, c := range v.latency.counts {
			if c == 0 {
				continue
			}
			lower, upper := bucketBounds(i)
			if !yield(float64(lower+upper)/2/1e6, c) {
				return
			}
		}
	}
}
