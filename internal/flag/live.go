package flag

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/rollout"
	"github.com/pipit-dev/pipit/internal/traffic"
)

// MaxRemembered bounds how many users' variants a Live remembers to
// attribute their outcomes; past it, a user's outcome goes to the variant
// their targetingKey hashes to now, which is the one they were served
// unless a rule on other attributes decided.
const MaxRemembered = 100_000

// Event kinds an application reports.
const (
	// EventSuccess is a unit of work that went well (a request served).
	EventSuccess = "success"
	// EventError is one that failed, for error-rate and success-rate.
	EventError = "error"
	// EventConversion is a user reaching a goal.
	EventConversion = "conversion"
)

// MaxLatency bounds a reported latency: more is a mistake, not a
// measurement.
const MaxLatency = time.Hour

// Event is an outcome an application reports for one user.
type Event struct {
	TargetingKey string `json:"targetingKey"`
	Kind         string `json:"kind"`
	// LatencyMs is the work's duration in milliseconds; 0 or absent when
	// not measured.
	LatencyMs float64 `json:"latencyMs,omitempty"`
	// Variant is the variant the application was served, when it knows;
	// pipit's own memory of what it served comes first.
	Variant string `json:"variant,omitempty"`
	// Goal names the goal of spec.analysis.goals a conversion reached;
	// empty for the first. A conversion naming no goal of the rollout
	// counts for none.
	Goal string `json:"goal,omitempty"`
}

// Live is one flag being rolled out: the compiled flag, its state as the
// runtime sets it, what each user was served and the outcomes reported
// per variant, which the analysis reads as it reads the proxy's
// (metric.StatsSource). It is safe for concurrent use.
type Live struct {
	flag  *Flag
	goals []string

	mu     sync.Mutex
	st     State
	epoch  uint64
	stable *traffic.Counters
	canary *traffic.Counters // nil without a canary
	served map[string]bool   // targetingKey: served the canary
	// visits counts, during a rollout with goals, the users served each
	// variant and those who converted, as the proxy's do for a service.
	visits *traffic.Visits
	// evaluations counts the answers by variant and reason since the
	// daemon started, for Prometheus; failed ones under reason ERROR.
	evaluations map[evaluation]uint64
}

// evaluation is a kind of answer: its variant and reason.
type evaluation struct{ variant, reason string }

// reasonError counts the evaluations that failed (OFREP's ERROR reason).
const reasonError = "ERROR"

// NewLive returns f with stable as the variant everybody has; goals
// name the rollout's goals (spec.analysis.goals), in order.
func NewLive(f *Flag, stable string, goals []string) *Live {
	l := &Live{flag: f, goals: goals, st: State{Stable: stable}, served: map[string]bool{}, evaluations: map[evaluation]uint64{}}
	l.stable = l.counters(stable)
	return l
}

func (l *Live) counters(variant string) *traffic.Counters {
	l.epoch++
	return traffic.NewCounters(variant, l.epoch)
}

// Flag is the compiled flag.
func (l *Live) Flag() *Flag { return l.flag }

// State is where the rollout stands now.
func (l *Live) State() State {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.st
}

// The rollout's ports: a flag rollout's target and router are its Live.
var (
	_ rollout.Target = (*Live)(nil)
	_ rollout.Router = (*Live)(nil)
)

// SetWeight sets the canary variant's share of users and whether it may
// be served at all (rollout.Router).
func (l *Live) SetWeight(_ context.Context, w v1alpha1.Percent, live bool) error {
	if w < 0 || w > v1alpha1.FullWeight {
		return fmt.Errorf("flag %s: weight %s is not from 0 to 100", l.flag.key, w)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.st.Weight, l.st.Live = w, live
	return nil
}

// Weight is the canary variant's share of users now (rollout.Router).
func (l *Live) Weight() v1alpha1.Percent {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.st.Weight
}

// Install makes v's variant the one everybody has (rollout.Target).
func (l *Live) Install(ctx context.Context, v v1alpha1.VersionRef) error { return l.Promote(ctx, v) }

// DeployCanary starts rolling v's variant out: its outcomes count from
// now (rollout.Target).
func (l *Live) DeployCanary(_ context.Context, v v1alpha1.VersionRef) error {
	if err := l.checkVariant(v); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.st.Canary == v.Version && l.canary != nil {
		return nil
	}
	l.st.Canary, l.canary = v.Version, l.counters(v.Version)
	if len(l.goals) > 0 {
		l.visits = traffic.NewVisits(l.goals, MaxRemembered, l.epoch)
	}
	l.st.Disabled = false
	clear(l.served)
	return nil
}

// Promote makes v's variant the one everybody has (rollout.Target).
// Promoting the variant everybody has changes nothing: a rolled-back
// variant stays disabled when the engine re-applies the stable.
func (l *Live) Promote(_ context.Context, v v1alpha1.VersionRef) error {
	if err := l.checkVariant(v); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.st.Stable != v.Version {
		l.st.Stable, l.stable = v.Version, l.counters(v.Version)
		l.st.Disabled = false
	}
	if l.st.Canary == v.Version {
		l.retire()
	}
	return nil
}

// RetireCanary ends v's rollout; when v was not promoted, the rollout
// was rolled back, and answers say the variant is disabled
// (rollout.Target).
func (l *Live) RetireCanary(_ context.Context, v v1alpha1.VersionRef) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.st.Canary != v.Version {
		return nil
	}
	l.st.Disabled = v.Version != l.st.Stable
	l.retire()
	return nil
}

// Observe reports the variants in each part; a variant is always up
// (rollout.Target).
func (l *Live) Observe(context.Context) rollout.Observed {
	l.mu.Lock()
	defer l.mu.Unlock()
	o := rollout.Observed{StableVersion: l.st.Stable, Weight: l.st.Weight}
	if l.st.Canary != "" {
		o.CanaryVersion, o.CanaryHealth = l.st.Canary, rollout.HealthUp
	}
	return o
}

func (l *Live) checkVariant(v v1alpha1.VersionRef) error {
	if !l.flag.HasVariant(v.Version) {
		return fmt.Errorf("flag %s has no variant %q; its variants are %s", l.flag.key, clip(v.Version), strings.Join(slices.Sorted(maps.Keys(l.flag.variants)), ", "))
	}
	return nil
}

func (l *Live) retire() {
	l.st.Canary, l.canary, l.visits = "", nil, nil
	clear(l.served)
}

// Evaluate answers for ctx at the current state, remembering which
// variant the user was served.
func (l *Live) Evaluate(ctx map[string]any) (Result, *Failure) {
	l.mu.Lock()
	defer l.mu.Unlock()
	r, fail := l.flag.Evaluate(l.st, ctx)
	if fail != nil {
		l.evaluations[evaluation{reason: reasonError}]++
		return r, fail
	}
	l.evaluations[evaluation{r.Variant, r.Reason}]++
	if key, ok := ctx[TargetingKey].(string); ok && key != "" && l.canary != nil {
		if _, known := l.served[key]; known || len(l.served) < MaxRemembered {
			l.served[key] = r.Canary
		}
		// Users are counted from the first split on: one served before
		// it, when everybody has the stable variant, would count for the
		// stable whichever variant the split gives them.
		if l.visits != nil && l.st.Weight > 0 {
			l.visits.Observe(userHash(key), r.Canary, 0)
		}
	}
	return r, nil
}

// Record counts one outcome for the variant its user was served.
func (l *Live) Record(e Event) error {
	if err := CheckEvent(e); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	canary := l.servedCanary(e)
	c := l.stable
	if canary {
		c = l.canary
	}
	switch e.Kind {
	case EventSuccess, EventError:
		class := traffic.Class2xx
		if e.Kind == EventError {
			class = traffic.Class5xx
		}
		if e.LatencyMs > 0 {
			c.Record(class, time.Duration(e.LatencyMs*float64(time.Millisecond)))
		} else {
			c.RecordOutcome(class)
		}
	case EventConversion:
		// Only a user served since the split converts for a variant:
		// one served before it had the stable variant, whichever the
		// split gives them.
		if l.visits != nil {
			l.visits.Reach(userHash(e.TargetingKey), l.goalBit(e.Goal))
		}
	}
	return nil
}

// goalBit is the bit of traffic.Visits.Observe's mask for the goal
// named goal ("" for the first); zero for a goal the rollout has not.
func (l *Live) goalBit(goal string) uint32 {
	i := 0
	if goal != "" {
		i = slices.Index(l.goals, goal)
	}
	if i < 0 || i >= min(len(l.goals), traffic.MaxGoals) {
		return 0
	}
	return 1 << i
}

// userHash tells users apart in traffic.Visits.
func userHash(targetingKey string) uint64 { return xxhash.Sum64String(targetingKey) }

// CheckEvent reports what is wrong with e, or returns nil.
func CheckEvent(e Event) error {
	switch {
	case e.TargetingKey == "":
		return errors.New("targetingKey is required: the user whose outcome this is")
	case e.LatencyMs < 0 || e.LatencyMs > float64(MaxLatency/time.Millisecond):
		return fmt.Errorf("latencyMs must be from 0 to %d, not %v", MaxLatency/time.Millisecond, e.LatencyMs)
	}
	switch e.Kind {
	case EventSuccess, EventError, EventConversion:
		return nil
	}
	return fmt.Errorf("kind must be %s, %s or %s, not %q", EventSuccess, EventError, EventConversion, clip(e.Kind))
}

// servedCanary says whether e's user had the canary variant: as pipit
// remembers serving them, else as the application says, else as their
// key hashes now.
func (l *Live) servedCanary(e Event) bool {
	if l.canary == nil {
		return false
	}
	if canary, ok := l.served[e.TargetingKey]; ok {
		return canary
	}
	switch e.Variant {
	case l.st.Canary:
		return true
	case l.st.Stable:
		return false
	}
	r, fail := l.flag.Evaluate(l.st, map[string]any{TargetingKey: e.TargetingKey})
	return fail == nil && r.Canary
}

// Stats are the outcomes reported per variant since each was set, as
// the proxy's are per version.
func (l *Live) Stats() traffic.Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := traffic.Stats{Stable: l.stable.Snapshot()}
	if l.canary != nil {
		s.Canary = l.canary.Snapshot()
	}
	if l.visits != nil {
		s.AddVisits(l.visits)
	}
	return s
}

// clip shortens what a client wrote before it goes into an answer.
func clip(s string) string {
	const n = 64
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
