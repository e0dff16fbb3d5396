// Package engine is pipit's rollout state machine. It is pure and
// deterministic: Step takes the plan, the current status, what was observed
// and the time, and returns the next status with the actions to carry out.
// It starts no goroutines, reads no clock and does no I/O, so an hour-long
// rollout can be walked through in a test in milliseconds, and the same
// engine drives both the standalone daemon and the Kubernetes controller.
package engine

import (
	"time"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/rollout"
	"github.com/pipit-dev/pipit/internal/spec"
)

// Input is everything Step needs besides the plan and the status.
type Input struct {
	// Now is the current time, from the runtime's clock.
	Now time.Time
	// Commands from operators, oldest first.
	Commands []rollout.Command
	// Observed state of the target and router.
	Observed rollout.Observed
	// Measurements of the analysis metrics. The runtime measures only when
	// CheckDue says a check is due; nil means no check this time.
	Measurements []rollout.Measurement
	// Alarms from continuous tests (the sequential error-rate test, the
	// rollback hooks) found since the last step; any alarm is an anomaly at
	// once.
	Alarms []rollout.Alarm
	// HookResults are the answers of gate hook runs that finished since the
	// last step.
	HookResults []HookResult
}

// Result is what Step decided.
type Result struct {
	// Status to save before any action is carried out.
	Status v1alpha1.RolloutStatus
	// Actions to carry out, in order, after the status is saved.
	Actions []rollout.Action
	// Events describing each transition, to save with the status.
	Events []v1alpha1.Event
	// Consumed says, for each input command in order, whether it was
	// applied (nil) or refused (the reason).
	Consumed []error
}

// Step advances a rollout by one decision. It never mutates st.
func Step(plan spec.Plan, st v1alpha1.RolloutStatus, in Input) Result {
	m := newMachine(plan, st, in)
	for _, c := range in.Commands {
		m.res.Consumed = append(m.res.Consumed, m.applyCommand(c))
	}
	m.advance()
	m.markCanaryLive()
	m.st.StepLabel = m.stepOfSteps()
	m.res.Status = m.st
	m.res.Status.Conditions = Conditions(m.st, in.Now)
	return m.res
}

// machine carries one Step's working state, so the helpers below stay
// small and read in the order things happen.
type machine struct {
	plan spec.Plan
	st   v1alpha1.RolloutStatus
	in   Input
	now  time.Time
	res  Result
	// checked is set once a check judged this decision's measurements,
	// which an experiment then looks at.
	checked bool
}

func newMachine(plan spec.Plan, st v1alpha1.RolloutStatus, in Input) *machine {
	// A deep copy, so that Step changes nothing the caller holds (a
	// daemon's status view may read it meanwhile) and the status it returns
	// shares no memory with its input.
	st = *st.DeepCopy()
	if st.Phase == "" {
		st.Phase = v1alpha1.PhaseIdle
	}
	return &machine{plan: plan, st: st, in: in, now: in.Now}
}

// markCanaryLive says, on every weight change decided, whether requests
// may reach the canary at all in the phase the step ends in: a weight of
// zero in a rollback also closes the canary to matched and sticky
// requests, and the router need not know the phases to tell.
func (m *machine) markCanaryLive() {
	for i := range m.res.Actions {
		if m.res.Actions[i].Kind == rollout.ActionSetWeight {
			m.res.Actions[i].CanaryLive = CanaryLive(m.st.Phase)
		}
	}
}

// CanaryLive reports whether requests may reach the canary in phase p:
// not before a rollout, and not from the moment it rolls back.
func CanaryLive(p v1alpha1.Phase) bool {
	return running(p) && p != v1alpha1.PhaseRollingBack
}

// running reports whether the canary should be running in phase p.
func running(p v1alpha1.Phase) bool { return !p.Terminal() && p != v1alpha1.PhaseIdle && p != "" }

// Reapply returns the actions that make the world match a saved status
// again — after a restart, or after an action failed — before anything new
// is decided: the stable installed, the canary running or retired as its
// phase says, a promotion in flight carried on, the stable promoted again
// once the rollout ended, and the weight applied.
// Before the first install there is nothing to re-apply: the router's
// objects may need the stable version's to exist.
func Reapply(st v1alpha1.RolloutStatus) []rollout.Action {
	if st.Stable == nil {
		return nil
	}
	var acts []rollout.Action
	if (st.Phase == v1alpha1.PhaseIdle || st.Phase == "") && st.Canary == nil {
		acts = append(acts, rollout.Action{Kind: rollout.ActionInstall, Version: st.Stable})
	}
	if st.Canary != nil {
		kind := rollout.ActionRetireCanary
		if running(st.Phase) {
			kind = rollout.ActionDeployCanary
		}
		acts = append(acts, rollout.Action{Kind: kind, Version: st.Canary})
		if st.Phase == v1alpha1.PhasePromoting {
			acts = append(acts, rollout.Action{Kind: rollout.ActionPromote, Version: st.Canary})
		}
	}
	if st.Phase.Terminal() {
		// An undo names the previous version the stable before the
		// target switches back to it: promoting the stable again finishes
		// a switch that failed or was cut short, and every target's
		// Promote of the version it serves changes nothing. It comes
		// after the canary is retired: a Deployment target would switch
		// its Services to a canary copy that still runs the stable's
		// version. Not during a rollout, for the same reason; an undo's
		// switch is finished by the re-apply before a new rollout starts.
		acts = append(acts, rollout.Action{Kind: rollout.ActionPromote, Version: st.Stable})
	}
	return append(acts, rollout.Action{Kind: rollout.ActionSetWeight, Weight: st.CanaryWeight, CanaryLive: CanaryLive(st.Phase)})
}

// advance moves the rollout on as far as the plan, the time and the
// observations allow.
func (m *machine) advance() {
	switch m.st.Phase {
	case v1alpha1.PhaseProgressing:
		m.progress()
	case v1alpha1.PhaseAwaitingDecision:
		m.watchWhileAwaitingDecision()
	case v1alpha1.PhasePaused:
		// An operator's pause stops the clock, not the watch: a canary
		// that breaks meanwhile is still an anomaly. Nothing else runs, so
		// the verdict is not needed.
		m.watchForAnomalies()
	case v1alpha1.PhasePromoting:
		m.finishPromotion()
	case v1alpha1.PhaseRollingBack:
		m.finishRollback()
	case v1alpha1.PhaseSucceeded:
		m.recordContractHookResults()
		m.watchPromotion()
		if m.st.Phase == v1alpha1.PhaseSucceeded { // not undone by the watch
			m.closeUndoWindow()
		}
	}
}

// CheckDue reports whether an analysis check, or a check of the new stable
// during the watch after a promotion, is due at now, so that the runtime
// measures only when the engine will use the measurements.
func CheckDue(st v1alpha1.RolloutStatus, now time.Time) bool {
	if rollout.Watching(st) {
		return watchDue(st, now)
	}
	if !checking(st) {
		return false
	}
	return !now.Before(st.Analysis.NextCheckAt.Time)
}

// checking reports whether checks run in this status: while the canary
// is exposed and the rollout is under way (not paused by an operator,
// whose pause stops the clock).
func checking(st v1alpha1.RolloutStatus) bool {
	switch st.Phase {
	case v1alpha1.PhaseProgressing, v1alpha1.PhaseAwaitingDecision:
		return exposed(st) && st.Analysis.NextCheckAt != nil
	}
	return false
}

// exposed reports whether the canary is under test: it gets a share of
// the traffic, or, in a blue-green rollout, it is open on its preview.
// An exposed canary is checked, and its going down is an anomaly.
func exposed(st v1alpha1.RolloutStatus) bool {
	return st.CanaryWeight > 0 || st.Previewing
}

// NextWake returns the earliest time at which Step would decide something
// new with no new input: a pause ending, a check falling due or a deadline
// passing. ok is false when nothing is scheduled.
func NextWake(plan spec.Plan, st v1alpha1.RolloutStatus) (at time.Time, ok bool) {
	consider := func(t time.Time) {
		if !ok || t.Before(at) {
			at, ok = t, true
		}
	}
	if checking(st) {
		consider(st.Analysis.NextCheckAt.Time)
	}
	if st.WaitingSince != nil && st.Phase != v1alpha1.PhasePaused {
		consider(st.WaitingSince.Add(plan.ProgressDeadline))
	}
	if st.Phase == v1alpha1.PhaseProgressing && st.StepStartedAt != nil && int(st.CurrentStep) < len(plan.Steps) {
		if s := plan.Steps[st.CurrentStep]; s.Kind == spec.StepPause && s.Duration > 0 {
			consider(st.StepStartedAt.Add(s.Duration))
		}
	}
	if w := st.HookWait; w != nil && st.Phase == v1alpha1.PhaseProgressing {
		consider(w.NextRunAt.Time)
	}
	if g := st.Gate; g != nil && g.Expires != nil && !g.Expired && st.Phase == v1alpha1.PhaseAwaitingDecision {
		consider(g.Expires.Time)
	}
	if rollout.Watching(st) {
		consider(st.Watch.NextCheckAt.Time)
		consider(st.Watch.Until.Time)
	}
	if st.Phase == v1alpha1.PhaseSucceeded && st.PromotedAt != nil && (st.Previous != nil || !st.Contracted && len(plan.Hooks[v1alpha1.HookContract]) > 0) {
		consider(st.PromotedAt.Add(plan.UndoWindow))
	}
	return at, ok
}
