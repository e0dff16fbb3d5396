package traffic

import (
	"sync/atomic"
	"time"
)

// The latency histogram is log-linear: each decade from 10µs to 100s is cut
// into histSteps equal buckets, so a bucket is at most 5% of its lower
// edge wide (0.5% at the top of a decade). Interpolating inside a bucket
// keeps a quantile within 5% of the true value, usually far closer. One
// bucket below 10µs and one from 100s up catch the rest.
//
// Decimal decades, rather than powers of two, make the usual Prometheus
// bounds (1ms, 2.5ms, 5ms, …) exact bucket edges, so the exported
// histogram needs no interpolation.
const (
	histFirst   = 10 * time.Microsecond
	histDecades = 7
	histSteps   = 180
	histBuckets = 1 + histDecades*histSteps + 1
)

// histogram is the live, lock-free form updated on the request path.
type histogram struct {
	counts   [histBuckets]atomic.Uint64
	sumNanos atomic.Uint64
}

// latencies is a snapshot of a histogram, a plain value that subtracts.
type latencies struct {
	counts   [histBuckets]uint64
	sumNanos uint64
}

func (h *histogram) record(d time.Duration) {
	if d < 0 {
		d = 0
	}
	h.counts[bucketOf(d)].Add(1)
	h.sumNanos.Add(uint64(d))
}

func (h *histogram) snapshot() latencies {
	var l latencies
	for i := range h.counts {
		l.counts[i] = h.counts[i].Load()
	}
	l.sumNanos = h.sumNanos.Load()
	return l
}

func (l latencies) minus(prev latencies) latencies {
	for i := range l.counts {
		l.counts[i] -= prev.counts[i]
	}
	l.sumNanos -= prev.sumNanos
	return l
}

func (l *latencies) total() uint64 {
	var n uint64
	for _, c := range l.counts {
		n += c
	}
	return n
}

// bucketOf returns the bucket holding d.
func bucketOf(d time.Duration) int {
	if d < histFirst {
		return 0
	}
	lo := histFirst
	for decade := range histDecades {
		if d < 10*lo {
			return 1 + decade*histSteps + int((d-lo)/(lo*9/histSteps))
		}
		lo *= 10
	}
	return histBuckets - 1
}

// bucketBounds returns the edges of bucket i; the last bucket has no
// upper edge and reports its lower one twice.
func bucketBounds(i int) (lower, upper time.Duration) {
	switch {
	case i == 0:
		return 0, histFirst
	case i == histBuckets-1:
		top := histFirst
		for range histDecades {
			top *= 10
		}
		return top, top
	}
	decade, step := (i-1)/histSteps, (i-1)%histSteps
	lo := histFirst
	for range decade {
		lo *= 10
	}
	width := lo * 9 / histSteps
	lower = lo + time.Duration(step)*width
	return lower, lower + width
}

// quantile returns the q-quantile (0 ≤ q ≤ 1), interpolating linearly
// inside the bucket where it falls.
func (l *latencies) quantile(q float64) (time.Duration, bool) {
	n := l.total()
	if n == 0 || !(q >= 0 && q <= 1) { // also refuses NaN
		return 0, false
	}
	rank := q * float64(n)
	var seen float64
	for i, c := range l.counts {
		if c == 0 {
			continue
		}
		if next := seen + float64(c); next >= rank {
			lower, upper := bucketBounds(i)
			frac := (rank - seen) / float64(c)
			return lower + time.Duration(frac*float64(upper-lower)), true
		}
		seen += float64(c)
	}
	lower, _ := bucketBounds(histBuckets - 1)
	return lower, true // not reached: rank ≤ n
}

// countBelow returns how many samples fell below d, exactly when d is a
// bucket edge.
func (l *latencies) countBelow(d time.Duration) uint64 {
	var n uint64
	for _, c := range l.counts[:bucketOf(d)] {
		n += c
	}
	return n
}

// ExportBounds are the upper bounds, in seconds, of a latency histogram
// exported in Prometheus' format. Each is an edge of this package's
// histogram (histogram_test.go checks), so the counts exported below them are exact.
var ExportBounds = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}
