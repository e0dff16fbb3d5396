package runtime

import (
	"context"
	"errors"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/rollout"
	"github.com/pipit-dev/pipit/internal/spec"
	"github.com/pipit-dev/pipit/internal/testenv/fakeclock"
)

// world is a fake target, router, meter and store in one, recording the
// order in which things happen.
type world struct {
	log         []string
	weight      v1alpha1.Percent
	stable      string
	canary      string
	saved       []v1alpha1.RolloutStatus
	pending     []rollout.PendingCommand
	failSave    bool
	failRoute   int // SetWeight calls left to fail
	failPromote int // Promote calls left to fail
	// promoteLater: Promote is asked for but the target does not serve
	// the new stable version until the test sets stable itself.
	promoteLater bool
}

func (w *world) Install(ctx context.Context, v v1alpha1.VersionRef) error { return w.Promote(ctx, v) }

func (w *world) DeployCanary(_ context.Context, v v1alpha1.VersionRef) error {
	w.log = append(w.log, "deploy "+v.Version)
	w.canary = v.Version
	return nil
}
func (w *world) Promote(_ context.Context, v v1alpha1.VersionRef) error {
	w.log = append(w.log, "promote "+v.Version)
	if w.failPromote > 0 {
		w.failPromote--
		return errors.New("target unavailable")
	}
	if !w.promoteLater {
		w.stable = v.Version
	}
	return nil
}
func (w *world) RetireCanary(_ context.Context, v v1alpha1.VersionRef) error {
	w.log = append(w.log, "retire "+v.Version)
	return nil
}
func (w *world) Observe(context.Context) rollout.Observed {
	return rollout.Observed{StableVersion: w.stable, CanaryVersion: w.canary, CanaryHealth: rollout.HealthUp}
}
func (w *world) SetWeight(_ context.Context, p v1alpha1.Percent, _ bool) error {
	if w.failRoute > 0 {
		w.failRoute--
		return errors.New("router unavailable")
	}
	w.log = append(w.log, "weight "+p.String())
	w.weight = p
	return nil
}
func (w *world) Weight() v1alpha1.Percent                                              { return w.weight }
func (w *world) Measure(context.Context, v1alpha1.RolloutStatus) []rollout.Measurement { return nil }
func (w *world) Tick(v1alpha1.RolloutStatus) []rollout.Alarm                           { return nil }
func (w *world) Reset()                                                                {}
func (w *world) Save(_ context.Context, st v1alpha1.RolloutStatus, _ []v1alpha1.Event, consumed []int64) error {
	if w.failSave {
		return errors.New("disk full")
	}
	w.log = append(w.log, "save "+string(st.Phase))
	w.saved = append(w.saved, st)
	var left []rollout.PendingCommand
	for _, p := range w.pending {
		keep := true
		for _, id := range consumed {
			keep = keep && id != p.ID
		}
		if keep {
			left = append(left, p)
		}
	}
	w.pending = left
	return nil
}
func (w *world) Pending(context.Context) ([]rollout.PendingCommand, error) { return w.pending, nil }

func newRunner(w *world, clock *fakeclock.Clock) *Runner {
	five := v1alpha1.PercentOf(5)
	plan, err := spec.Resolve(&v1alpha1.RolloutSpec{Strategy: v1alpha1.Strategy{Steps: []v1alpha1.Step{
		{SetWeight: &five}, {Pause: &v1alpha1.PauseStep{Duration: &metav1.Duration{Duration: time.Minute}}},
	}}})
	if err != nil {
		panic(err)
	}
	w.stable = "v1"
	return &Runner{
		Name: "web", Plan: plan, Store: w, Target: w, Router: w, Meter: w,
		Status: v1alpha1.RolloutStatus{Phase: v1alpha1.PhaseIdle, Stable: &v1alpha1.VersionRef{Version: "v1"}},
		Clock:  clock,
	}
}

func deploy(id int64, v string) rollout.PendingCommand {
	return rollout.PendingCommand{ID: id, Command: rollout.Command{Kind: rollout.CommandDeploy, Canary: &v1alpha1.VersionRef{Version: v}}}
}

func TestRunnerSavesBeforeActing(t *testing.T) {
	clock := fakeclock.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	w := &world{pending: []rollout.PendingCommand{deploy(1, "v2")}}
	r := newRunner(w, clock)
	var applied []int64
	r.OnCommand = func(id int64, err error) {
		if err != nil {
			t.Errorf("command %d refused: %v", id, err)
		}
		applied = append(applied, id)
	}
	if _, _, err := r.Tick(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(w.log) == 0 || w.log[0] != "save Progressing" {
		t.Fatalf("first thing done was %v, want the save", w.log)
	}
	if len(w.pending) != 0 || len(applied) != 1 {
		t.Errorf("command not consumed: pending %v applied %v", w.pending, applied)
	}
	clock.Advance(time.Second)
	r.Tick(context.Background())
	if w.weight != v1alpha1.PercentOf(5) {
		t.Errorf("weight %s, want 5%%", w.weight)
	}
	// Nothing changes until the pause ends: no more writes.
	saves := len(w.saved)
	clock.Advance(10 * time.Second)
	next, ok, _ := r.Tick(context.Background())
	if len(w.saved) != saves {
		t.Errorf("a tick that changed nothing wrote the status")
	}
	if !ok || !next.Equal(clock.Now().Add(50*time.Second)) {
		t.Errorf("next wake %v, want the end of the pause", next)
	}
	// After the pause the runner settles through Promoting in one tick.
	clock.Advance(next.Sub(clock.Now()))
	r.Tick(context.Background())
	if r.Status.Phase != v1alpha1.PhaseSucceeded || w.stable != "v2" || w.weight != 0 {
		t.Errorf("phase %s stable %s weight %s, want Succeeded with v2 at 0", r.Status.Phase, w.stable, w.weight)
	}
}

// TestRunnerDoesNotRewriteAWaitingPromotion: while the target rolls the
// new stable version out, every tick asks it again to promote, but the
// status, saved once, is not written again until the promotion completes.
func TestRunnerDoesNotRewriteAWaitingPromotion(t *testing.T) {
	clock := fakeclock.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	w := &world{pending: []rollout.PendingCommand{deploy(1, "v2")}, promoteLater: true}
	r := newRunner(w, clock)
	r.Tick(context.Background())
	clock.Advance(time.Second)
	r.Tick(context.Background()) // 5%
	clock.Advance(time.Minute)
	r.Tick(context.Background()) // the pause is over: promoting
	if r.Status.Phase != v1alpha1.PhasePromoting {
		t.Fatalf("phase %s, want Promoting", r.Status.Phase)
	}
	saves, asked := len(w.saved), 0
	for range 5 {
		clock.Advance(time.Second)
		if _, _, err := r.Tick(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	for _, l := range w.log {
		if l == "promote v2" {
			asked++
		}
	}
	if len(w.saved) != saves {
		t.Errorf("%d writes of an unchanged status while the promotion waited", len(w.saved)-saves)
	}
	if asked < 6 {
		t.Errorf("the target was asked to promote %d times, want once per tick", asked)
	}
	w.stable = "v2"
	clock.Advance(time.Second)
	r.Tick(context.Background())
	if r.Status.Phase != v1alpha1.PhaseSucceeded || len(w.saved) != saves+1 {
		t.Errorf("phase %s after %d more writes, want Succeeded after one", r.Status.Phase, len(w.saved)-saves)
	}
}

func TestRunnerDoesNotActWhenTheSaveFails(t *testing.T) {
	clock := fakeclock.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	w := &world{pending: []rollout.PendingCommand{deploy(1, "v2")}, failSave: true}
	r := newRunner(w, clock)
	if _, _, err := r.Tick(context.Background()); err == nil {
		t.Fatal("tick succeeded although the save failed")
	}
	if len(w.log) != 0 || r.Status.Phase != v1alpha1.PhaseIdle || len(w.pending) != 1 {
		t.Errorf("acted without saving: log %v, phase %s, pending %d", w.log, r.Status.Phase, len(w.pending))
	}
}

func TestRunnerReappliesAfterAFailedAction(t *testing.T) {
	clock := fakeclock.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	w := &world{pending: []rollout.PendingCommand{deploy(1, "v2")}}
	r := newRunner(w, clock)
	r.Tick(context.Background())
	w.failRoute = 1
	clock.Advance(time.Second)
	r.Tick(context.Background()) // decides 5%, but the router refuses
	if w.weight != 0 || r.Status.CanaryWeight != v1alpha1.PercentOf(5) {
		t.Fatalf("router %s status %s", w.weight, r.Status.CanaryWeight)
	}
	clock.Advance(time.Second)
	r.Tick(context.Background())
	if w.weight != v1alpha1.PercentOf(5) {
		t.Errorf("the failed weight change was not re-applied: router at %s", w.weight)
	}
}

func TestConvergeReappliesTheSavedState(t *testing.T) {
	clock := fakeclock.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	w := &world{}
	r := newRunner(w, clock)
	r.Status.Phase = v1alpha1.PhaseProgressing
	r.Status.Canary = &v1alpha1.VersionRef{Version: "v2"}
	r.Status.CanaryWeight = v1alpha1.PercentOf(25)
	if err := r.Converge(context.Background()); err != nil {
		t.Fatal(err)
	}
	if w.canary != "v2" || w.weight != v1alpha1.PercentOf(25) {
		t.Errorf("after converge canary %q weight %s", w.canary, w.weight)
	}
	w.log = nil
	r.Status.Phase = v1alpha1.PhaseRolledBack
	r.Status.CanaryWeight = 0
	r.Converge(context.Background())
	if w.log[0] != "retire v2" || w.weight != 0 {
		t.Errorf("rolled-back rollout converged to %v", w.log)
	}
}

// TestRunnerRetriesTheSwitchBackOfAnUndo: an undo saves the previous
// version as the stable before the target switches back; when that switch
// fails, re-applying the saved status switches again, so the target does
// not go on serving the undone version while the status names the
// previous one.
func TestRunnerRetriesTheSwitchBackOfAnUndo(t *testing.T) {
	clock := fakeclock.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	w := &world{pending: []rollout.PendingCommand{deploy(1, "v2")}}
	r := newRunner(w, clock)
	for _, d := range []time.Duration{0, time.Second, time.Minute} {
		clock.Advance(d)
		r.Tick(context.Background())
	}
	if r.Status.Phase != v1alpha1.PhaseSucceeded || w.stable != "v2" {
		t.Fatalf("phase %s serving %s, want Succeeded on v2", r.Status.Phase, w.stable)
	}
	w.pending = []rollout.PendingCommand{{ID: 2, Command: rollout.Command{Kind: rollout.CommandUndo, Actor: "bob"}}}
	w.failPromote = 1
	clock.Advance(time.Second)
	r.Tick(context.Background())
	if r.Status.Phase != v1alpha1.PhaseRolledBack || r.Status.Stable.Version != "v1" || w.stable != "v2" {
		t.Fatalf("after the failed switch: phase %s, status stable %s, serving %s", r.Status.Phase, r.Status.Stable.Version, w.stable)
	}
	clock.Advance(time.Second)
	if _, _, err := r.Tick(context.Background()); err != nil {
		t.Fatal(err)
	}
	if w.stable != "v1" {
		t.Errorf("the target still serves %s after re-applying an undo to v1", w.stable)
	}
	// A restart converges the same way.
	w.stable, w.log = "v2", nil
	if err := r.Converge(context.Background()); err != nil || w.stable != "v1" {
		t.Errorf("converge after a restart: serving %s, err %v, log %v", w.stable, err, w.log)
	}
}
