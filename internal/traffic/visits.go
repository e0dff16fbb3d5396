package traffic

import (
	"math/bits"
	"slices"
	"sync"
	"sync/atomic"
)

// MaxGoals is how many goals Visits tracks: one bit each per user.
const MaxGoals = 16

// DefaultMaxUsers bounds the users one Visits remembers, both versions
// together. A user costs 36 bytes of map (a 64-bit hash and 32 bits of
// state, with the map's overhead, as measured), so a full Visits holds
// 9 MiB.
const DefaultMaxUsers = 1 << 18

// visitShards spreads the users over this many maps, each with its lock,
// so that concurrent requests rarely wait for one another.
const visitShards = 32

// Bits of a user's state in a visitShard's map.
const (
	visitCanary   = 1 << 31 // first seen on the canary; else on stable
	visitGoalMask = 1<<MaxGoals - 1
)

// Visits counts users and conversions per version for the goals of an
// experiment: each distinct user is counted once, as a visitor of the
// version they were routed to when first seen, and each goal they reach
// afterwards, once, as a conversion of that same version, wherever later
// requests go (a raised weight may move them to the canary). Users are
// told apart by a 64-bit hash of their key; two keys that collide (about
// one chance in 2^64 per pair) count as one user.
//
// Memory is bounded: once maxUsers users (NewVisits) are remembered,
// users first seen after that are not counted at all (Untracked says how
// many requests met a full set), so the counts are those of the first
// users of the experiment, exact for them.
type Visits struct {
	epoch    uint64
	goals    []string
	perShard int
	shards   [visitShards]visitShard
	// counts[0] is stable's, counts[1] the canary's.
	counts    [2]visitCounts
	untracked atomic.Uint64
}

type visitShard struct {
	mu    sync.Mutex
	users map[uint64]uint32 // hash of the user's key → visitCanary | goals reached
	_     [48]byte          // pads a shard to 64 bytes: two locks never share a cache line
}

type visitCounts struct {
	visitors    atomic.Uint64
	conversions [MaxGoals]atomic.Uint64
}

// NewVisits returns an empty Visits of the goals named (at most
// MaxGoals, in order: bit i of Observe's mask is goals[i]) that remembers
// at most maxUsers users (DefaultMaxUsers when 0 or less). epoch numbers
// it among the Visits of one source, as NewCounters' does.
func NewVisits(goals []string, maxUsers int, epoch uint64) *Visits {
	if maxUsers <= 0 {
		maxUsers = DefaultMaxUsers
	}
	goals = slices.Clone(goals[:min(len(goals), MaxGoals)])
	v := &Visits{epoch: epoch, goals: goals, perShard: max(1, maxUsers/visitShards)}
	for i := range v.shards {
		v.shards[i].users = make(map[uint64]uint32)
	}
	return v
}

// Observe counts one request of user (the hash of their key) that was
// routed to the canary or to stable and matched the goals in the mask
// goals (bit i for goal i; zero for none). It takes one shard's lock for
// a map lookup and allocates only when a map grows.
func (v *Visits) Observe(user uint64, canary bool, goals uint32) {
	v.observe(user, canary, goals, true)
}

// Reach counts the goals in the mask goals for user, but only for a user
// already counted as a visitor: a conversion reported for a user not
// seen since the split started says nothing of either version.
func (v *Visits) Reach(user uint64, goals uint32) {
	v.observe(user, false, goals, false)
}

// observe counts a request of user, who is a new visitor of the canary or
// of stable when unseen and visit is set, and is ignored when unseen
// otherwise.
func (v *Visits) observe(user uint64, canary bool, goals uint32, visit bool) {
	sh := &v.shards[user%visitShards]
	goals &= visitGoalMask
	sh.mu.Lock()
	state, seen := sh.users[user]
	if !seen {
		if !visit {
			sh.mu.Unlock()
			return
		}
		if len(sh.users) >= v.perShard {
			sh.mu.Unlock()
			v.untracked.Add(1)
			return
		}
		if canary {
			state = visitCanary
		}
	}
	reached := goals &^ state
	if !seen || reached != 0 {
		sh.users[user] = state | reached
	}
	sh.mu.Unlock()
	c := &v.counts[0]
	if state&visitCanary != 0 {
		c = &v.counts[1]
	}
	if !seen {
		c.visitors.Add(1)
	}
	for reached != 0 {
		c.conversions[bits.TrailingZeros32(reached)].Add(1)
		reached &= reached - 1
	}
}

// Untracked is how many requests came from users first seen once the set
// was full, and so were not counted.
func (v *Visits) Untracked() uint64 { return v.untracked.Load() }

// snapshot is the cumulative visits of one version.
func (v *Visits) snapshot(canary bool) visitStats {
	c := &v.counts[0]
	if canary {
		c = &v.counts[1]
	}
	// Conversions first: Observe counts a visitor before its
	// conversions, so a snapshot never has more conversions than
	// visitors, which a test of proportions would refuse.
	s := visitStats{epoch: v.epoch, goals: v.goals}
	for i := range c.conversions {
		s.conversions[i] = c.conversions[i].Load()
	}
	s.visitors = c.visitors.Load()
	return s
}

// visitStats are one version's visitors and conversions, cumulative or a
// window.
type visitStats struct {
	epoch       uint64
	goals       []string // shared, never written
	visitors    uint64
	conversions [MaxGoals]uint64
}

// since is the window between prev and s (see VersionStats.Since).
func (s visitStats) since(prev visitStats) visitStats {
	if s.epoch != prev.epoch {
		return s
	}
	s.visitors -= prev.visitors
	for i := range s.conversions {
		s.conversions[i] -= prev.conversions[i]
	}
	return s
}

// AddVisits puts v's visitors and conversions of each version in s,
// which was read at the same moment.
func (s *Stats) AddVisits(v *Visits) {
	s.Stable.visits, s.Canary.visits = v.snapshot(false), v.snapshot(true)
}

// Visitors is how many distinct users were first routed to the version
// (see Visits); zero without goals.
func (v VersionStats) Visitors() uint64 { return v.visits.visitors }

// Goals names the goals counted, in order; none without goals.
func (v VersionStats) Goals() []string { return slices.Clone(v.visits.goals) }

// Conversions is how many of the version's visitors reached the goal
// named goal; "" names the first goal. ok is false when no goal has that
// name.
func (v VersionStats) Conversions(goal string) (n uint64, ok bool) {
	i := 0
	if goal != "" {
		i = slices.Index(v.visits.goals, goal)
	}
	if i < 0 || i >= len(v.visits.goals) {
		return 0, false
	}
	return v.visits.conversions[i], true
}

// ConversionRate is the share of the version's visitors, in percent, who
// reached the goal named goal ("" for the first). ok is false without
// visitors or without such a goal.
func (v VersionStats) ConversionRate(goal string) (pct float64, ok bool) {
	n, ok := v.Conversions(goal)
	if !ok || v.visits.visitors == 0 {
		return 0, false
	}
	return 100 * float64(n) / float64(v.visits.visitors), true
}
