// Package runtime is the loop shared by pipit's runtimes: observe the
// world, let the engine decide, write the decision down, then carry it out.
// What differs between standalone and Kubernetes — how a version runs
// (Target), how traffic is split (Router), where state lives (Store) and
// how metrics are measured (Meter) — comes in through small interfaces.
package runtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"time"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/engine"
	"github.com/pipit-dev/pipit/internal/rollout"
	"github.com/pipit-dev/pipit/internal/spec"
)

// Runner drives one rollout. It is not safe for concurrent use: one
// goroutine calls Converge once, then Tick repeatedly.
type Runner struct {
	Name   string
	Plan   spec.Plan
	Status v1alpha1.RolloutStatus
	Store  rollout.Store
	Target rollout.Target
	Router rollout.Router
	Meter  rollout.Meter
	// Clock tells the engine the time; nil is the wall clock. Tests give
	// a fake one.
	Clock rollout.Clock
	// Hooks runs the rollout's webhooks. Optional.
	Hooks *Hooks
	// OnCommand is told, for each consumed command, whether the engine
	// applied it (nil) or refused it. Optional.
	OnCommand func(id int64, err error)
	// OnEvents is handed every saved event with the status it led to, for
	// notifications. It must not block. Optional.
	OnEvents func(st v1alpha1.RolloutStatus, events []v1alpha1.Event)
	// Log receives the rollout's events and failed actions; nil discards
	// them.
	Log *slog.Logger

	// diverged is set when carrying out an action failed, so the next tick
	// re-applies the whole desired state.
	diverged bool
}

// Converge makes the target and router match the saved status: after a
// restart the same canary runs and the same weight is applied again, before
// anything new is decided (engine.Reapply says what that takes).
func (r *Runner) Converge(ctx context.Context) error {
	var errs []error
	for _, a := range engine.Reapply(r.Status) {
		errs = append(errs, r.apply(ctx, a))
	}
	err := errors.Join(errs...)
	r.diverged = err != nil
	return err
}

// Tick lets the engine decide once (more, through transient phases), saving
// each decision before carrying it out. It returns when the rollout next
// needs a tick if nothing else happens.
func (r *Runner) Tick(ctx context.Context) (next time.Time, ok bool, err error) {
	if r.diverged {
		if err := r.Converge(ctx); err != nil {
			return r.now().Add(time.Second), true, fmt.Errorf("re-applying the desired state: %w", err)
		}
	}
	pending, err := r.Store.Pending(ctx)
	if err != nil {
		return r.now().Add(time.Second), true, fmt.Errorf("reading commands: %w", err)
	}
	// A rollout still promoting or rolling back after the settle bound
	// goes on at the next tick: nothing more to do about it here.
	_, err = engine.Settle(func() (v1alpha1.Phase, error) {
		err := r.decide(ctx, pending)
		pending = nil // consumed by the first decision only
		return r.Status.Phase, err
	})
	if err != nil {
		return r.now().Add(time.Second), true, err
	}
	next, ok = engine.NextWake(r.Plan, r.Status)
	return next, ok, nil
}

// decide runs one engine step: write first, then act.
func (r *Runner) decide(ctx context.Context, pending []rollout.PendingCommand) error {
	now := r.now()
	in := engine.Input{Now: now, Observed: r.Target.Observe(ctx), Alarms: r.Meter.Tick(r.Status)}
	if r.Hooks != nil {
		in.HookResults = r.Hooks.Results()
		in.Alarms = append(in.Alarms, r.Hooks.Alarms(r.Status, now)...)
	}
	in.Observed.Weight = r.Router.Weight()
	ids := make([]int64, len(pending))
	for i, p := range pending {
		in.Commands = append(in.Commands, p.Command)
		ids[i] = p.ID
	}
	if engine.CheckDue(r.Status, now) {
		in.Measurements = r.Meter.Measure(ctx, r.Status)
		// Rollout hooks answer about a canary; the watch after a
		// promotion has none.
		if r.Hooks != nil && !rollout.Watching(r.Status) {
			in.Measurements = append(in.Measurements, r.Hooks.Measure(r.Status)...)
		}
	}
	res := engine.Step(r.Plan, r.Status, in)
	// A decision that changes nothing saved is not written again: while
	// a promotion waits for the target, the engine repeats its Promote
	// action on every tick with the same status, and the saved status
	// already says what is being acted on.
	changed := len(ids) > 0 || len(res.Events) > 0 || !reflect.DeepEqual(res.Status, r.Status)
	if !changed && len(res.Actions) == 0 {
		return nil
	}
	if changed {
		if err := r.Store.Save(ctx, res.Status, res.Events, ids); err != nil {
			return fmt.Errorf("saving status: %w", err)
		}
	}
	r.Status = res.Status
	for i, id := range ids {
		if r.OnCommand != nil {
			r.OnCommand(id, res.Consumed[i])
		}
	}
	for _, e := range res.Events {
		level := slog.LevelInfo
		if e.Type == v1alpha1.EventWarning {
			level = slog.LevelWarn
		}
		r.logger().Log(ctx, level, "rollout event", "rollout", r.Name, "reason", e.Reason, "phase", e.Phase, "weight", e.Weight.String(), "message", e.Message)
	}
	if len(res.Events) > 0 {
		if r.Hooks != nil {
			r.Hooks.Events(res.Status, res.Events)
		}
		if r.OnEvents != nil {
			r.OnEvents(res.Status, res.Events)
		}
	}
	for _, a := range res.Actions {
		if err := r.apply(ctx, a); err != nil {
			r.diverged = true
			r.logger().Warn("action failed; retrying on the next tick", "rollout", r.Name, "action", a.Kind, "err", err)
		}
	}
	return nil
}

func (r *Runner) apply(ctx context.Context, a rollout.Action) error {
	switch a.Kind {
	case rollout.ActionSetWeight:
		return r.Router.SetWeight(ctx, a.Weight, a.CanaryLive)
	case rollout.ActionInstall:
		return r.Target.Install(ctx, *a.Version)
	case rollout.ActionDeployCanary:
		r.Meter.Reset()
		return r.Target.DeployCanary(ctx, *a.Version)
	case rollout.ActionPromote:
		return r.Target.Promote(ctx, *a.Version)
	case rollout.ActionRetireCanary:
		return r.Target.RetireCanary(ctx, *a.Version)
	case rollout.ActionRunHooks:
		if r.Hooks != nil {
			r.Hooks.Start(a.Hook, a.Run, r.Status)
		}
		return nil
	}
	return fmt.Errorf("unknown action %q", a.Kind)
}

func (r *Runner) now() time.Time { return rollout.ClockOrSystem(r.Clock).Now() }

func (r *Runner) logger() *slog.Logger {
	if r.Log != nil {
		return r.Log
	}
	return discard
}

// discard is the logger of a component given none: a library never writes
// to the process-wide logger behind its caller's back.
var discard = slog.New(slog.DiscardHandler)
