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
