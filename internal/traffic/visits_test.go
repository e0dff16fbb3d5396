package traffic

import (
	"sync"
	"testing"
)

// goals are the goals of the tests: bit 0 is buy, bit 1 signup.
var goals = []string{"buy", "signup"}

// conv is the conversions of goal in v, or a failure.
func conv(t *testing.T, v VersionStats, goal string) uint64 {
	t.Helper()
	n, ok := v.Conversions(goal)
	if !ok {
		t.Fatalf("no goal %q", goal)
	}
	return n
}

// visitsOf is the stable's and the canary's stats of v.
func visitsOf(v *Visits) Stats {
	var s Stats
	s.AddVisits(v)
	return s
}

// TestVisitsCountUsersOnce: a user is one visitor however many requests
// they send, and reaching a goal twice is one conversion.
func TestVisitsCountUsersOnce(t *testing.T) {
	v := NewVisits(goals, 0, 1)
	for range 5 {
		v.Observe(1, false, 0)
		v.Observe(2, true, 0)
	}
	v.Observe(1, false, 1)
	v.Observe(1, false, 1)
	v.Observe(2, true, 0b10)
	v.Observe(3, true, 0b11) // converts on its first request
	s := visitsOf(v)
	if got := s.Stable.Visitors(); got != 1 {
		t.Errorf("stable visitors = %d, want 1", got)
	}
	if got := s.Canary.Visitors(); got != 2 {
		t.Errorf("canary visitors = %d, want 2", got)
	}
	if got := conv(t, s.Stable, "buy"); got != 1 {
		t.Errorf("stable conversions of goal 0 = %d, want 1", got)
	}
	if got := [2]uint64{conv(t, s.Canary, "buy"), conv(t, s.Canary, "signup")}; got != [2]uint64{1, 2} {
		t.Errorf("canary conversions = %v, want [1 2]", got)
	}
	if r, ok := s.Canary.ConversionRate("signup"); !ok || r != 100 {
		t.Errorf("canary conversion rate of goal 1 = %v, %v; want 100", r, ok)
	}
	if _, ok := (VersionStats{}).ConversionRate(""); ok {
		t.Error("a version without visitors has a conversion rate")
	}
	if _, ok := s.Canary.Conversions("signin"); ok {
		t.Error("a goal that does not exist has conversions")
	}
}

// TestVisitsAttributeToFirstVersion: a user first routed to stable and
// then moved to the canary (the weight rose) converts for stable.
func TestVisitsAttributeToFirstVersion(t *testing.T) {
	v := NewVisits(goals, 0, 1)
	v.Observe(7, false, 0)
	v.Observe(7, true, 1)
	s := visitsOf(v)
	if s.Stable.Visitors() != 1 || conv(t, s.Stable, "buy") != 1 {
		t.Errorf("stable: %d visitors, %d conversions; want 1 and 1", s.Stable.Visitors(), conv(t, s.Stable, "buy"))
	}
	if s.Canary.Visitors() != 0 || conv(t, s.Canary, "buy") != 0 {
		t.Errorf("canary: %d visitors, %d conversions; want none", s.Canary.Visitors(), conv(t, s.Canary, "buy"))
	}
}

// TestVisitsReachCountsOnlyVisitors: a goal reported for a user not
// counted as a visitor counts for nobody, and does not make them one.
func TestVisitsReachCountsOnlyVisitors(t *testing.T) {
	v := NewVisits(goals, 0, 1)
	v.Reach(7, 1)
	v.Observe(8, true, 0)
	v.Reach(8, 1)
	s := visitsOf(v)
	if s.Stable.Visitors() != 0 || conv(t, s.Stable, "buy") != 0 || s.Canary.Visitors() != 1 || conv(t, s.Canary, "buy") != 1 {
		t.Errorf("stable %d/%d, canary %d/%d; want 0/0 and 1/1", conv(t, s.Stable, "buy"), s.Stable.Visitors(),
			conv(t, s.Canary, "buy"), s.Canary.Visitors())
	}
}

// TestVisitsCapHolds: past the cap new users are not remembered, and
// concurrent users are counted exactly below it.
func TestVisitsCapHolds(t *testing.T) {
	const maxUsers = 64 * visitShards
	v := NewVisits(goals, maxUsers, 1)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for u := range 1000 {
				user := uint64(g*1000+u) * 0x9e3779b97f4a7c15
				v.Observe(user, u%2 == 0, 1)
			}
		})
	}
	wg.Wait()
	s := visitsOf(v)
	total := s.Stable.Visitors() + s.Canary.Visitors()
	if total > maxUsers || total < maxUsers*9/10 {
		t.Errorf("%d users remembered; want at most %d and close to it", total, maxUsers)
	}
	if conv := conv(t, s.Stable, "buy") + conv(t, s.Canary, "buy"); conv != total {
		t.Errorf("%d conversions of %d users who all converted", conv, total)
	}
	if got := v.Untracked(); got != 8000-total {
		t.Errorf("untracked = %d, want %d", got, 8000-total)
	}
}

// TestVisitsWindow: a window holds the users first seen and the goals
// reached in it; a new Visits (a new canary) starts over.
func TestVisitsWindow(t *testing.T) {
	v := NewVisits(goals, 0, 1)
	v.Observe(1, true, 0)
	before := visitsOf(v)
	v.Observe(2, true, 0)
	v.Observe(1, true, 1)
	w := visitsOf(v).Since(before)
	if w.Canary.Visitors() != 1 || conv(t, w.Canary, "") != 1 {
		t.Errorf("window: %d visitors, %d conversions; want 1 and 1", w.Canary.Visitors(), conv(t, w.Canary, ""))
	}
	next := NewVisits(goals, 0, 2)
	next.Observe(3, true, 0)
	if w := visitsOf(next).Since(before); w.Canary.Visitors() != 1 {
		t.Errorf("after a new Visits the window has %d visitors, want 1", w.Canary.Visitors())
	}
}
