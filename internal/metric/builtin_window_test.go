package metric

import (
	"testing"
	"time"

	"github.com/pipit-dev/pipit/internal/testenv/fakeclock"
)

// TestBuiltinWindowStartsOnItsClock: the live window reports when it
// started on the provider's clock: at creation, then at each Measure and
// Reset.
func TestBuiltinWindowStartsOnItsClock(t *testing.T) {
	start := time.Date(2026, 7, 1, 12, 0, 0, 0, time.UTC)
	clock := fakeclock.New(start)
	b := NewBuiltin(fakeStats{}, clock)
	if _, since := b.Window(); !since.Equal(start) {
		t.Fatalf("first window since %v, want %v", since, start)
	}
	clock.Advance(time.Minute)
	if _, since := b.Window(); !since.Equal(start) {
		t.Fatalf("a window not measured moved its start to %v", since)
	}
	b.Measure(nil)
	if _, since := b.Window(); !since.Equal(start.Add(time.Minute)) {
		t.Fatalf("window since %v after Measure, want %v", since, start.Add(time.Minute))
	}
	clock.Advance(time.Second)
	b.Reset()
	if _, since := b.Window(); !since.Equal(start.Add(time.Minute + time.Second)) {
		t.Fatalf("window since %v after Reset, want %v", since, start.Add(time.Minute+time.Second))
	}
}
