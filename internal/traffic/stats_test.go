package traffic

import (
	"testing"
	"time"
)

func TestAccountingAllocatesNothing(t *testing.T) {
	c := NewCounters("v1", 1)
	if n := testing.AllocsPerRun(1000, func() { c.Record(Class2xx, 3*time.Millisecond) }); n != 0 {
		t.Errorf("record allocates %v times per request", n)
	}
}

// TestImported checks that a Prometheus histogram imported at two times
// gives the window's counts, and quantiles interpolated inside its
// buckets as histogram_quantile does.
func TestImported(t *testing.T) {
	ms := time.Millisecond
	first := Imported("v2", 90, 10, []Bucket{{10 * ms, 50}, {25 * ms, 100}, {Unbounded, 100}}, 1500*ms)
	second := Imported("v2", 180, 20, []Bucket{{10 * ms, 50}, {25 * ms, 150}, {Unbounded, 200}}, 5000*ms)
	w := second.Since(first)
	if w.Requests != 100 || w.Errors5xx != 10 {
		t.Fatalf("window: %d requests, %d errors; want 100, 10", w.Requests, w.Errors5xx)
	}
	if n := w.LatencyCount(); n != 100 {
		t.Fatalf("window's latencies: %d, want 100", n)
	}
	// Half the window is in (10ms, 25ms], half above 25ms: the median is
	// at 25ms, the p25 halfway into (10ms, 25ms].
	for _, c := range []struct{ q, want float64 }{{0.25, 17.5}, {0.5, 25}, {0.99, 25}} {
		got, ok := w.Quantile(c.q)
		if !ok || got < c.want*0.95 || got > c.want*1.05 {
			t.Errorf("p%g = %g (%v), want %g within 5%%", 100*c.q, got, ok, c.want)
		}
	}
	if mean, _ := w.Mean(); mean != 35 {
		t.Errorf("mean %g ms, want 35", mean)
	}
}

// TestRecordOutcomeCountsNoLatency checks that an outcome without a
// latency counts in the rates and not in the latencies.
func TestRecordOutcomeCountsNoLatency(t *testing.T) {
	c := NewCounters("on", 1)
	c.Record(Class2xx, 10*time.Millisecond)
	c.RecordOutcome(Class5xx)
	s := c.Snapshot()
	if rate, ok := s.ErrorRate(); !ok || rate != 50 || s.LatencyCount() != 1 {
		t.Errorf("error rate %v %v, latencies %d; want 50%% and 1", rate, ok, s.LatencyCount())
	}
	if mean, ok := s.Mean(); !ok || mean != 10 {
		t.Errorf("mean %v %v, want 10 ms", mean, ok)
	}
}
