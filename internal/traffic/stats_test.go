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
