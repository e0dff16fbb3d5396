package flag

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/rollout"
	"github.com/pipit-dev/pipit/internal/traffic"
)

// TestLiveAttributesOutcomes checks that outcomes count for the variant
// each user was served, whatever the variant they claim, and that a
// promotion or retirement starts new counts.
func TestLiveAttributesOutcomes(t *testing.T) {
	l := NewLive(compileCheckout(t), "off", nil)
	if err := l.DeployCanary(context.Background(), v1alpha1.VersionRef{Version: "on"}); err != nil {
		t.Fatal(err)
	}
	if err := l.SetWeight(context.Background(), pct(50), true); err != nil {
		t.Fatal(err)
	}
	var canaryUsers, stableUsers int
	for i := range 400 {
		key := fmt.Sprint("user-", i)
		r, fail := l.Evaluate(map[string]any{TargetingKey: key})
		if fail != nil {
			t.Fatal(fail)
		}
		kind := EventSuccess
		if r.Canary {
			kind, canaryUsers = EventError, canaryUsers+1 // the new variant fails
		} else {
			stableUsers++
		}
		// The application's claim does not override what pipit served.
		if err := l.Record(Event{TargetingKey: key, Kind: kind, LatencyMs: 20, Variant: "off"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Record(Event{TargetingKey: "user-0", Kind: EventConversion}); err != nil {
		t.Fatal(err)
	}
	s := l.Stats()
	if s.Canary.Version != "on" || int(s.Canary.Requests) != canaryUsers || int(s.Canary.Errors5xx) != canaryUsers {
		t.Errorf("canary stats %+v, want %d errors", s.Canary, canaryUsers)
	}
	if s.Stable.Version != "off" || int(s.Stable.Requests) != stableUsers || s.Stable.Errors5xx != 0 || s.Stable.LatencyCount() != uint64(stableUsers) {
		t.Errorf("stable stats %+v, want %d successes", s.Stable, stableUsers)
	}
	// A key never evaluated is attributed as it hashes.
	if err := l.Record(Event{TargetingKey: "never-seen", Kind: EventError}); err != nil {
		t.Fatal(err)
	}
	if got := l.Stats(); got.Canary.Requests+got.Stable.Requests != 401 {
		t.Errorf("%d outcomes, want 401", got.Canary.Requests+got.Stable.Requests)
	}
	if err := l.Promote(context.Background(), v1alpha1.VersionRef{Version: "on"}); err != nil {
		t.Fatal(err)
	}
	if s := l.Stats(); s.Stable.Version != "on" || s.Stable.Requests != 0 || s.Canary.Version != "" || l.State().Canary != "" {
		t.Errorf("after the promotion %+v, %+v", s, l.State())
	}
}

// liveMistakes are events refused, each with a part of the reason.
var liveMistakes = []struct {
	e      Event
	reason string
}{
	{Event{Kind: EventError}, "targetingKey is required"},
	{Event{TargetingKey: "u", Kind: "crash"}, "kind must be"},
	{Event{TargetingKey: "u", Kind: EventSuccess, LatencyMs: -1}, "latencyMs"},
	{Event{TargetingKey: "u", Kind: EventSuccess, LatencyMs: 1e12}, "latencyMs"},
}

func TestLiveRefusesBadEvents(t *testing.T) {
	l := NewLive(compileCheckout(t), "off", nil)
	for _, tc := range liveMistakes {
		if err := l.Record(tc.e); err == nil || !strings.Contains(err.Error(), tc.reason) {
			t.Errorf("%+v: %v, want %q", tc.e, err, tc.reason)
		}
	}
	if err := l.DeployCanary(context.Background(), v1alpha1.VersionRef{Version: "maybe"}); err == nil {
		t.Error("a variant the flag has not was rolled out")
	}
}

// TestLiveRemembersBoundedly checks that the memory of who was served
// what stops at MaxRemembered.
func TestLiveRemembersBoundedly(t *testing.T) {
	l := NewLive(compileCheckout(t), "off", nil)
	if err := l.DeployCanary(context.Background(), v1alpha1.VersionRef{Version: "on"}); err != nil {
		t.Fatal(err)
	}
	if err := l.SetWeight(context.Background(), pct(50), true); err != nil {
		t.Fatal(err)
	}
	for i := range MaxRemembered + 10 {
		if _, fail := l.Evaluate(map[string]any{TargetingKey: fmt.Sprint(i)}); fail != nil {
			t.Fatal(fail)
		}
	}
	if n := len(l.served); n != MaxRemembered {
		t.Errorf("remembers %d users, want %d", n, MaxRemembered)
	}
	if err := l.RetireCanary(context.Background(), v1alpha1.VersionRef{Version: "on"}); err != nil {
		t.Fatal(err)
	}
	if n := len(l.served); n != 0 {
		t.Errorf("remembers %d users after the canary went", n)
	}
}

// TestLiveAsTargetAndRouter walks a flag through the engine's actions:
// the canary variant deployed and weighted, observed, rolled back
// (disabled for everyone) and deployed again.
func TestLiveAsTargetAndRouter(t *testing.T) {
	ctx := context.Background()
	l := NewLive(compileCheckout(t), "off", nil)
	on := v1alpha1.VersionRef{Version: "on"}
	if err := l.DeployCanary(ctx, on); err != nil {
		t.Fatal(err)
	}
	if err := l.SetWeight(ctx, pct(25), true); err != nil {
		t.Fatal(err)
	}
	if o := l.Observe(ctx); o.StableVersion != "off" || o.CanaryVersion != "on" || o.CanaryHealth != rollout.HealthUp || l.Weight() != pct(25) {
		t.Fatalf("observed %+v at %s", o, l.Weight())
	}
	if err := l.SetWeight(ctx, 0, false); err != nil {
		t.Fatal(err)
	}
	if err := l.RetireCanary(ctx, on); err != nil {
		t.Fatal(err)
	}
	r, fail := l.Evaluate(map[string]any{TargetingKey: "u"})
	if fail != nil || r.Variant != "off" || r.Reason != ReasonDisabled || l.Observe(ctx).CanaryVersion != "" {
		t.Fatalf("after the rollback: %+v %v", r, fail)
	}
	// Re-applying the rolled-back status promotes the stable again: no
	// change, the rolled-back variant stays disabled.
	if err := l.Promote(ctx, v1alpha1.VersionRef{Version: "off"}); err != nil || !l.State().Disabled {
		t.Fatalf("the stable promoted again: %v, %+v", err, l.State())
	}
	if err := l.DeployCanary(ctx, on); err != nil || l.State().Disabled {
		t.Fatalf("deployed again: %v, %+v", err, l.State())
	}
	if err := l.SetWeight(ctx, pct(101), true); err == nil {
		t.Error("a weight over 100% was set")
	}
}

// TestLiveCountsConversionsPerGoal checks that a flag's conversions feed
// the goals' counts as the proxy's do: each user served during the
// rollout a visitor of their variant, each goal they report once, for
// the variant they were served; a goal the rollout has not counts for
// none, nor does a user seen before the split, and the counts start over
// with the next canary.
func TestLiveCountsConversionsPerGoal(t *testing.T) {
	ctx := context.Background()
	l := NewLive(compileCheckout(t), "off", []string{"signup", "purchase"})
	if err := l.DeployCanary(ctx, v1alpha1.VersionRef{Version: "on"}); err != nil {
		t.Fatal(err)
	}
	// A user served and converting before the split counts for nobody.
	if _, fail := l.Evaluate(map[string]any{TargetingKey: "early"}); fail != nil {
		t.Fatal(fail)
	}
	if err := l.Record(Event{TargetingKey: "early", Kind: EventConversion, Goal: "purchase"}); err != nil {
		t.Fatal(err)
	}
	if err := l.SetWeight(ctx, pct(50), true); err != nil {
		t.Fatal(err)
	}
	var want [2]struct{ visitors, purchases uint64 }
	for i := range 300 {
		key := fmt.Sprint("user-", i)
		r, fail := l.Evaluate(map[string]any{TargetingKey: key})
		if fail != nil {
			t.Fatal(fail)
		}
		role := 0
		if r.Canary {
			role = 1
		}
		want[role].visitors++
		if i%3 == 0 { // twice, and an unknown goal: still one conversion
			for _, goal := range []string{"purchase", "purchase", "refund"} {
				if err := l.Record(Event{TargetingKey: key, Kind: EventConversion, Goal: goal}); err != nil {
					t.Fatal(err)
				}
			}
			want[role].purchases++
		}
	}
	s := l.Stats()
	for role, v := range []traffic.VersionStats{s.Stable, s.Canary} {
		purchases, _ := v.Conversions("purchase")
		signups, _ := v.Conversions("")
		if v.Visitors() != want[role].visitors || purchases != want[role].purchases || signups != 0 {
			t.Errorf("%s: %d visitors, %d purchases, %d signups; want %d, %d, 0", v.Version, v.Visitors(), purchases, signups, want[role].visitors, want[role].purchases)
		}
	}
	if want[0].visitors == 0 || want[1].visitors == 0 {
		t.Fatalf("a 50%% split served one variant only: %+v", want)
	}
	// Prometheus sees the same counts.
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(NewCollector(l))
	exported := map[string]float64{}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			exported[mf.GetName()] += m.GetCounter().GetValue()
		}
	}
	if exported["pipit_flag_visitors_total"] != float64(want[0].visitors+want[1].visitors) ||
		exported["pipit_flag_conversions_total"] != float64(want[0].purchases+want[1].purchases) ||
		exported["pipit_flag_evaluations_total"] != 301 {
		t.Errorf("exported %v, want %+v and 301 evaluations", exported, want)
	}
	if err := l.RetireCanary(ctx, v1alpha1.VersionRef{Version: "on"}); err != nil {
		t.Fatal(err)
	}
	if s := l.Stats(); s.Stable.Visitors() != 0 {
		t.Errorf("after the rollout ended, %d visitors still counted", s.Stable.Visitors())
	}
}
