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
	"github.com/pipit-dev/pipit/internal/analysis"
	"github.com/pipit-dev/pipit/internal/spec"
)

// Health is what the runtime knows of the canary's liveness.
type Health int

const (
	// HealthUnknown: not probed yet (for example just after a restart).
	HealthUnknown Health = iota
	// HealthUp: the canary answers its health checks.
	HealthUp
	// HealthDown: the canary stopped answering.
	HealthDown
)

// Observed is what the runtime sees of the world when it calls Step.
type Observed struct {
	// CanaryVersion is the ID (VersionRef.ID) of the version CanaryHealth
	// describes. Health reported for another version (the one just
	// replaced) counts as unknown.
	CanaryVersion string
	// CanaryHealth of CanaryVersion.
	CanaryHealth Health
	// CanaryReason says why the canary is down, for events.
	CanaryReason string
	// CanaryFailed says the canary is down for good rather than not up
	// yet (its processes crash in a loop): an anomaly even before it
	// receives traffic, instead of a wait until the progress deadline.
	CanaryFailed bool
	// StableVersion is the ID of the version the stable target serves
	// now. A promotion is complete when it equals the canary's.
	StableVersion string
	// Weight is the canary weight the router applies now. A rollback is
	// complete when it is zero.
	Weight v1alpha1.Percent
}

// Input is everything Step needs besides the plan and the status.
type Input struct {
	// Now is the current time, from the runtime's clock.
	Now time.Time
	// Commands from operators, oldest first.
	Commands []Command
	// Observed state of the target and router.
	Observed Observed
	// Measurements of the analysis metrics. The runtime measures only when
	// CheckDue says a check is due; nil means no check this time.
	Measurements []analysis.Measurement
	// Alarms from continuous tests (the sequential error-rate test, the
	// rollback hooks) found since the last step; any alarm is an anomaly at
	// once.
	Alarms []analysis.Alarm
	// HookResults are the answers of gate hook runs that finished since the
	// last step.
	HookResults []HookResult
}

// ActionKind names a side effect the runtime must carry out.
type ActionKind string

const (
	// ActionDeployCanary makes the target run Version as the canary.
	ActionDeployCanary ActionKind = "DeployCanary"
	// ActionSetWeight makes the router send Weight of traffic to the canary.
	ActionSetWeight ActionKind = "SetWeight"
	// ActionPromote makes the target serve the canary's Version as stable.
	ActionPromote ActionKind = "Promote"
	// ActionRetireCanary stops routing to, and running, the canary Version.
	ActionRetireCanary ActionKind = "RetireCanary"
	// ActionRunHooks runs every webhook of type Hook, as run number Run; the
	// answer comes back as a HookResult.
	ActionRunHooks ActionKind = "RunHooks"
)

// Action is one side effect. Actions are idempotent desired states, so
// carrying one out twice (for example after a crash) does no harm.
type Action struct {
	Kind    ActionKind
	Weight  v1alpha1.Percent     // ActionSetWeight
	Version *v1alpha1.VersionRef // DeployCanary, Promote, RetireCanary
	Hook    v1alpha1.HookType    // ActionRunHooks
	Run     int64                // ActionRunHooks
}

// Result is what Step decided.
type Result struct {
	// Status to save before any action is carried out.
	Status v1alpha1.RolloutStatus
	// Actions to carry out, in order, after the status is saved.
	Actions []Action
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
		m.closeUndoWindow()
	}
}

// CheckDue reports whether an analysis check is due at now, so that the
// runtime measures only when the engine will use the measurements.
func CheckDue(st v1alpha1.RolloutStatus, now time.Time) bool {
	if !checking(st) {
		return false
	}
	return !now.Before(st.Analysis.NextCheckAt.Time)
}

// checking reports whether checks run in this status: while the canary
// receives traffic and the rollout is under way (not paused by an operator,
// whose pause stops the clock).
func checking(st v1alpha1.RolloutStatus) bool {
	switch st.Phase {
	case v1alpha1.PhaseProgressing, v1alpha1.PhaseAwaitingDecision:
		return st.CanaryWeight > 0 && st.Analysis.NextCheckAt != nil
	}
	return false
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
	if st.Phase == v1alpha1.PhaseSucceeded && st.PromotedAt != nil && (st.Previous != nil || !st.Contracted && len(plan.Hooks[v1alpha1.HookContract]) > 0) {
		consider(st.PromotedAt.Add(plan.UndoWindow))
	}
	return at, ok
}
