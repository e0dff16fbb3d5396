package fakeclock

import (
	"context"
	"testing"
	"time"

	"github.com/pipit-dev/pipit/internal/rollout"
)

func TestTimersFireOnlyWhenTheClockIsMovedPastThem(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c := New(start)
	short, long := c.NewTimer(time.Second), c.NewTimer(time.Minute)
	c.Advance(999 * time.Millisecond)
	select {
	case <-short.C():
		t.Fatal("a timer fired before its time")
	default:
	}
	c.Advance(time.Millisecond)
	if at := <-short.C(); !at.Equal(start.Add(time.Second)) {
		t.Fatalf("fired at %v, want %v", at, start.Add(time.Second))
	}
	if !long.Stop() || long.Stop() {
		t.Fatal("Stop should report a pending timer once")
	}
	c.Advance(time.Hour)
	select {
	case <-long.C():
		t.Fatal("a stopped timer fired")
	default:
	}
	if long.Reset(time.Second) {
		t.Fatal("Reset of a stopped timer reported it pending")
	}
	c.Advance(time.Second)
	<-long.C()
}

func TestSleepReturnsWhenTheClockMovesOrTheContextEnds(t *testing.T) {
	c := New(time.Unix(0, 0))
	done := make(chan error, 1)
	go func() { done <- rollout.Sleep(context.Background(), c, time.Minute) }()
	if !c.WaitForTimers(1, 5*time.Second) {
		t.Fatal("Sleep never waited on the clock")
	}
	c.Advance(time.Minute)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := rollout.Sleep(ctx, c, time.Minute); err == nil {
		t.Fatal("Sleep ignored a cancelled context")
	}
}
