// Package fakeclock is a rollout.Clock that moves only when a test moves
// it, so that a test of something that waits checks what happens at a
// given time instead of sleeping and hoping.
package fakeclock

import (
	"sort"
	"sync"
	"time"

	"github.com/pipit-dev/pipit/internal/rollout"
)

// Clock is a fake rollout.Clock. Its zero value is not usable: use New.
type Clock struct {
	mu      sync.Mutex
	now     time.Time
	timers  []*timer
	changed chan struct{} // closed and replaced whenever a timer is added
}

// New returns a clock reading start.
func New(start time.Time) *Clock {
	return &Clock{now: start, changed: make(chan struct{})}
}

// Now is the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// NewTimer returns a timer firing once the clock has been moved d on.
func (c *Clock) NewTimer(d time.Duration) rollout.Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &timer{clock: c, ch: make(chan time.Time, 1)}
	c.schedule(t, d)
	return t
}

// schedule arms t to fire at now+d; c.mu is held.
func (c *Clock) schedule(t *timer, d time.Duration) {
	t.at = c.now.Add(d)
	if d <= 0 {
		t.fire(c.now)
		return
	}
	c.timers = append(c.timers, t)
	close(c.changed)
	c.changed = make(chan struct{})
}

// unschedule removes t; c.mu is held. It reports whether t was pending.
func (c *Clock) unschedule(t *timer) bool {
	for i, p := range c.timers {
		if p == t {
			c.timers = append(c.timers[:i], c.timers[i+1:]...)
			return true
		}
	}
	return false
}

// Advance moves the clock d on, firing every timer due by then in the
// order they fall due.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	sort.SliceStable(c.timers, func(i, j int) bool { return c.timers[i].at.Before(c.timers[j].at) })
	kept := c.timers[:0]
	for _, t := range c.timers {
		if t.at.After(c.now) {
			kept = append(kept, t)
			continue
		}
		t.fire(t.at)
	}
	c.timers = kept
}

// Timers is the number of timers waiting to fire.
func (c *Clock) Timers() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.timers)
}

// WaitForTimers blocks until at least n timers are waiting or the real
// time limit passes, and reports whether they are. A test calls it before
// Advance so that it moves time only once the code under test waits.
func (c *Clock) WaitForTimers(n int, limit time.Duration) bool {
	deadline := time.After(limit)
	for {
		c.mu.Lock()
		ok, changed := len(c.timers) >= n, c.changed
		c.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-changed:
		case <-deadline:
			return false
		}
	}
}

type timer struct {
	clock *Clock
	at    time.Time
	ch    chan time.Time
}

// fire delivers at without blocking; a value not yet read is replaced, as
// a time.Timer's channel holds at most one.
func (t *timer) fire(at time.Time) {
	select {
	case <-t.ch:
	default:
	}
	t.ch <- at
}

func (t *timer) C() <-chan time.Time { return t.ch }

func (t *timer) Stop() bool {
	t.clock.mu.Lock()
	defer t.clock.mu.Unlock()
	return t.clock.unschedule(t)
}

func (t *timer) Reset(d time.Duration) bool {
	t.clock.mu.Lock()
	defer t.clock.mu.Unlock()
	pending := t.clock.unschedule(t)
	t.clock.schedule(t, d)
	return pending
}
