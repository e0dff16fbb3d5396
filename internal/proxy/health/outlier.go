package health

import (
	"sync/atomic"
)

// Outliers is passive outlier detection (the proxy's OutlierFailures): an
// upstream that fails threshold times in a row, by 5xx answers or
// transport errors, is an outlier, to be ejected at once. The zero value
// detects nothing.
type Outliers struct {
	threshold int64 // 0: off
}

// NewOutliers returns outlier detection at threshold failures in a row;
// zero or less turns it off.
func NewOutliers(threshold int) Outliers {
	return Outliers{threshold: int64(max(threshold, 0))}
}

// On reports whether detection is on.
func (o Outliers) On() bool { return o.threshold > 0 }

// Run is the count of one upstream's failures in a row.
type Run struct{ n atomic.Int64 }

// Observe counts one answer of the upstream whose run is r: failed for a
// 5xx answer or a transport error; any other answer ends the run. It
// reports outlier, with the run's length n, to exactly one request of
// each run that reaches the threshold, and the upstream is then judged
// afresh: swapping the count back to zero makes one request eject, and
// lets an upstream let back in start a clean record.
func (o Outliers) Observe(r *Run, failed bool) (n int64, outlier bool) {
	if !o.On() {
		return 0, false
	}
	if !failed {
		if r.n.Load() != 0 {
			r.n.Store(0)
		}
		return 0, false
	}
	n = r.n.Add(1)
	return n, n >= o.threshold && r.n.CompareAndSwap(n, 0)
}
