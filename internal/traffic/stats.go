// Package traffic is what a version's traffic looked like: cumulative
// counts of its requests by status class and a histogram of their
// latencies, and windows of them (the difference of two snapshots). The
// built-in proxy records into it; the metric family reads it. It depends
// on the standard library alone.
package traffic

import (
	"iter"
	"math"
	"sync/atomic"
	"time"
)

// Class sorts a request's outcome: the class of the upstream's status,
// or ClassError when the upstream gave no answer.
type Class uint8

// The classes of outcomes, in the order of their status codes.
const (
	Class1xx Class = iota
	Class2xx
	Class3xx
	Class4xx
	Class5xx
	ClassError
	// NumClasses is the number of classes.
	NumClasses
)

var classNames = [NumClasses]string{"1xx", "2xx", "3xx", "4xx", "5xx", "error"}

// String is the class's label in metrics: "2xx", …, "error".
func (c Class) String() string { return classNames[c] }

// ClassOf is the class of an answer with status code.
func ClassOf(code int) Class {
	switch {
	case code < 200:
		return Class1xx
	case code < 300:
		return Class2xx
	case code < 400:
		return Class3xx
	case code < 500:
		return Class4xx
	}
	return Class5xx
}

// Counters are the live measurements of one version in one role. They
// only grow; windows are differences of snapshots.
type Counters struct {
	version string
	epoch   uint64
	classes [NumClasses]atomic.Uint64
	latency histogram
}

// NewCounters returns the counters of version. epoch numbers counter
// sets: VersionStats.Since tells a new set from an old one by it, so each
// set of one source needs its own.
func NewCounters(version string, epoch uint64) *Counters {
	return &Counters{version: version, epoch: epoch}
}

// Record counts one request. It only adds to atomics: no lock, no
// allocation.
func (c *Counters) Record(class Class, d time.Duration) {
	c.classes[class].Add(1)
	c.latency.record(d)
}

// RecordOutcome counts one request whose latency is not known, such as
// an outcome an application reports without one: it counts in the rates,
// not in the latencies.
func (c *Counters) RecordOutcome(class Class) {
	c.classes[class].Add(1)
}

// Snapshot is the cumulative measurements now.
func (c *Counters) Snapshot() VersionStats {
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

// Since returns the measurements between prev and s, both taken from the
// same source, prev first. A role whose version changed in between (a new
// counter set) counts from the new version's start.
func (s Stats) Since(prev Stats) Stats {
	return Stats{Stable: s.Stable.Since(prev.Stable), Canary: s.Canary.Since(prev.Canary)}
}

// VersionStats are the measurements of one version: cumulative from
// Counters.Snapshot, or a window from Since.
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
	classes [NumClasses]uint64
	latency latencies
	visits  visitStats
}

func (v *VersionStats) fill() {
	v.Requests = 0
	for _, n := range v.classes {
		v.Requests += n
	}
	v.Errors5xx = v.classes[Class5xx]
	v.TransportErrors = v.classes[ClassError]
}

// Since is the window between prev and v, prev first: v less prev when
// both come from the same counter set; otherwise the version changed in
// between and v already is the whole window.
func (v VersionStats) Since(prev VersionStats) VersionStats {
	// Visits have epochs of their own: they start again with each
	// canary, for both versions.
	v.visits = v.visits.since(prev.visits)
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

// Count is how many requests had an outcome of class c.
func (v VersionStats) Count(c Class) uint64 { return v.classes[c] }

// LatencyCount is how many latencies the histogram holds.
func (v VersionStats) LatencyCount() uint64 { return v.latency.total() }

// LatencySum is the sum of every latency, exact.
func (v VersionStats) LatencySum() time.Duration { return time.Duration(v.latency.sumNanos) }

// LatencyBelow is how many requests took less than d, exact when d is an
// edge of the histogram's buckets (IsBucketEdge).
func (v VersionStats) LatencyBelow(d time.Duration) uint64 { return v.latency.countBelow(d) }

// Unbounded is the upper bound of a histogram's last bucket, +Inf.
const Unbounded = time.Duration(math.MaxInt64)

// Bucket is one bucket of a cumulative histogram as Prometheus keeps it:
// Count observations took at most UpperBound.
type Bucket struct {
	UpperBound time.Duration
	Count      uint64
}

// Imported is the cumulative measurements of a version counted elsewhere,
// such as by a mesh whose counters Prometheus scrapes: ok requests that
// did not fail and failed ones (5xx), and their latencies as a cumulative
// histogram, buckets in increasing bounds, the last one Unbounded. The
// requests of each bucket are spread evenly over this package's finer
// buckets between its bounds, which interpolates quantiles inside it as
// Prometheus' histogram_quantile does; those above the last finite bound
// count at that bound. Every count must only grow from one import to the
// next, for windows (Since) to be right; all imports share one epoch.
func Imported(version string, ok, failed uint64, buckets []Bucket, sum time.Duration) VersionStats {
	v := VersionStats{Version: version}
	v.classes[Class2xx], v.classes[Class5xx] = ok, failed
	v.latency.sumNanos = uint64(max(sum, 0))
	var lower time.Duration
	var below uint64
	for _, b := range buckets {
		n := b.Count - min(below, b.Count) // a bucket below its predecessor holds none
		below = max(below, b.Count)
		first, end := bucketOf(lower), bucketOf(b.UpperBound)
		if b.UpperBound == Unbounded || end <= first {
			end = first + 1
		}
		// Each of the m buckets gets n/m, the first n%m one more: every
		// share only grows with n.
		m := uint64(end - first)
		for j := range m {
			v.latency.counts[first+int(j)] += (n + m - 1 - j) / m
		}
		lower = b.UpperBound
	}
	v.fill()
	return v
}
