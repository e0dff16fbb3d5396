package engine

import (
	"fmt"
	"reflect"
	"slices"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/rollout"
	"github.com/pipit-dev/pipit/internal/spec"
)

// underWay are the phases of a rollout under way that a person may steer.
var underWay = []v1alpha1.Phase{v1alpha1.PhaseProgressing, v1alpha1.PhasePaused, v1alpha1.PhaseAwaitingDecision}

// commandPhases are the phases in which each command other than deploy may
// be applied: the phase × command table of docs/architecture.md. Deploy is
// refused only while a promotion or rollback is under way (checkDeploy).
var commandPhases = map[rollout.CommandKind][]v1alpha1.Phase{
	rollout.CommandPause:       {v1alpha1.PhaseProgressing},
	rollout.CommandResume:      {v1alpha1.PhasePaused},
	rollout.CommandPromote:     underWay,
	rollout.CommandPromoteFull: underWay,
	rollout.CommandAbort:       underWay,
	rollout.CommandSetWeight:   underWay,
	rollout.CommandApprove:     {v1alpha1.PhaseAwaitingDecision},
	rollout.CommandReject:      {v1alpha1.PhaseAwaitingDecision},
	rollout.CommandUndo:        {v1alpha1.PhaseSucceeded},
	rollout.CommandRetry:       {v1alpha1.PhaseRolledBack, v1alpha1.PhaseAborted, v1alpha1.PhaseFailed},
}

// Allowed reports whether cmd can be applied to a rollout in status st, and
// why not. The control API calls it to refuse a command up front with a
// clear message; Step applies the same rule.
func Allowed(st v1alpha1.RolloutStatus, cmd rollout.Command) error {
	p := st.Phase
	if p == "" {
		p = v1alpha1.PhaseIdle
	}
	if cmd.Kind == rollout.CommandDeploy {
		return checkDeploy(st, cmd.Canary, p)
	}
	phases, known := commandPhases[cmd.Kind]
	if !known {
		return fmt.Errorf("unknown command %q", cmd.Kind)
	}
	if !slices.Contains(phases, p) {
		return fmt.Errorf("cannot %s a rollout that is %s", cmd.Kind, p)
	}
	return checkArguments(st, cmd)
}

// checkArguments refuses a command, in a phase that allows it, for what it
// lacks: a weight to set, a version to undo to, a canary to retry.
func checkArguments(st v1alpha1.RolloutStatus, cmd rollout.Command) error {
	switch cmd.Kind {
	case rollout.CommandSetWeight:
		if st.Experiment != nil {
			return errExperimentWeight
		}
		if st.Previewing {
			return errBlueGreenWeight
		}
		return checkManualWeight(cmd.Weight)
	case rollout.CommandUndo:
		if st.Previous == nil {
			return fmt.Errorf("nothing to undo: the undo window of the last promotion has closed")
		}
	case rollout.CommandRetry:
		if st.Canary == nil {
			return fmt.Errorf("there is no canary to retry")
		}
	}
	return nil
}

// checkDeploy refuses a deploy of no version, of the stable version when
// no canary is in flight (in flight, it takes the canary back), or of the
// canary already being rolled out; and, those mistakes told first, one
// that comes while a promotion or rollback is under way.
func checkDeploy(st v1alpha1.RolloutStatus, canary *v1alpha1.VersionRef, p v1alpha1.Phase) error {
	if canary == nil || canary.Version == "" {
		return fmt.Errorf("deploy needs a canary version")
	}
	active := !p.Terminal() && p != v1alpha1.PhaseIdle
	if st.Stable != nil && st.Stable.ID() == canary.ID() && !active {
		return fmt.Errorf("version %s is already the stable version", canary.Version)
	}
	// The whole description counts: the same label at another URL, or
	// run another way, is a new canary.
	if active && st.Canary != nil && reflect.DeepEqual(*st.Canary, *canary) {
		return fmt.Errorf("version %s is already being rolled out", canary.Version)
	}
	if transient(p) {
		return fmt.Errorf("the rollout is %s; deploy again when it has finished", p)
	}
	return nil
}

// errBlueGreenWeight refuses a share of traffic for a blue-green rollout,
// whose new version goes from none of it to all of it in one switch.
var errBlueGreenWeight = fmt.Errorf("a blue-green rollout switches all traffic at once: promote to switch, abort to stop")

// checkManualWeight refuses a weight an operator cannot set: none, or all
// of the traffic, which is a promotion (promote --full) and not a weight.
func checkManualWeight(w *v1alpha1.Percent) error {
	switch {
	case w == nil:
		return fmt.Errorf("set-weight needs a weight")
	case *w < 0 || *w >= v1alpha1.FullWeight:
		return fmt.Errorf("weight %s is out of range: from 0%% to below 100%%; to send all traffic to the canary, promote it (promote --full)", w)
	}
	return nil
}

// applyCommand applies one operator command, or returns why it cannot.
func (m *machine) applyCommand(c rollout.Command) error {
	if err := Allowed(m.st, c); err != nil {
		return err
	}
	switch c.Kind {
	case rollout.CommandDeploy:
		if m.st.Stable == nil {
			m.install(c)
			return nil
		}
		m.deploy(c)
	case rollout.CommandPause:
		m.st.PausedAt = micro(m.now)
		m.setPhase(v1alpha1.PhasePaused, "paused by "+actorOf(c))
		m.event(v1alpha1.EventNormal, "Paused", c, "Paused by %s%s", actorOf(c), because(c))
	case rollout.CommandResume:
		m.resume()
		m.event(v1alpha1.EventNormal, "Resumed", c, "Resumed by %s%s", actorOf(c), because(c))
	case rollout.CommandPromote, rollout.CommandApprove:
		return m.promoteOne(c)
	case rollout.CommandReject:
		m.rollBack(v1alpha1.PhaseAborted, "rejected by "+actorOf(c)+because(c), "")
	case rollout.CommandUndo:
		return m.undo(c)
	case rollout.CommandSetWeight:
		if m.plan.BlueGreen {
			return errBlueGreenWeight
		}
		if m.plan.Experiment != nil {
			return errExperimentWeight
		}
		// Traffic goes only to a canary that is up, as with a setWeight
		// step; the runtime sees the refusal at once.
		if *c.Weight > 0 && m.st.CanaryWeight == 0 && m.canaryHealth() != rollout.HealthUp {
			return fmt.Errorf("canary %s is not healthy yet; set its weight once it is", m.st.Canary.Version)
		}
		m.event(v1alpha1.EventNormal, "WeightSet", c, "Weight set to %s by %s%s; the plan's next setWeight step sets its own",
			c.Weight, actorOf(c), because(c))
		m.setWeight(*c.Weight)
	case rollout.CommandPromoteFull:
		// The person's decision is recorded before what it causes, so
		// the history reads in order.
		m.event(v1alpha1.EventNormal, "PromotedFull", c, "Remaining steps skipped by %s%s", actorOf(c), because(c))
		m.startPromotion()
	case rollout.CommandAbort:
		m.rollBack(v1alpha1.PhaseAborted, "aborted by "+actorOf(c)+because(c), "")
	case rollout.CommandRetry:
		m.restart()
		m.event(v1alpha1.EventNormal, "Retried", c, "Retry of canary %s by %s%s", m.st.Canary.Version, actorOf(c), because(c))
	}
	return nil
}

// install makes the first version the stable one: there is nothing to
// compare it with, so it is not a canary, and all traffic goes to it
// through the router from the start, so that the first canary only
// changes weights.
func (m *machine) install(c rollout.Command) {
	stable := *c.Canary
	m.st.Stable = &stable
	m.setPhase(v1alpha1.PhaseIdle, "Installed "+stable.Version+
		" as the stable version: a first install has nothing to compare with, so it is not a canary")
	m.act(rollout.Action{Kind: rollout.ActionInstall, Version: &stable})
	m.setWeight(0)
	m.event(v1alpha1.EventNormal, "Installed", c, "%s", m.st.Message)
}

// deploy starts rolling out a new canary, replacing any canary in flight.
// The stable version deployed again while a canary is in flight is a
// change of mind, not a canary of the stable against itself: the canary
// is taken back at once, with no analysis, as Argo Rollouts does when a
// template goes back to the stable one.
func (m *machine) deploy(c rollout.Command) {
	if m.st.Stable.ID() == c.Canary.ID() {
		m.rollBack(v1alpha1.PhaseAborted, fmt.Sprintf("stable version %s deployed again by %s%s: canary %s taken back at once",
			m.st.Stable.Version, actorOf(c), because(c), m.st.Canary.Version), "")
		return
	}
	canary := *c.Canary
	old := m.st.Canary
	replacing := old != nil && !m.st.Phase.Terminal() && m.st.Phase != v1alpha1.PhaseIdle
	m.st.Canary = &canary
	m.restart()
	if replacing {
		m.event(v1alpha1.EventNormal, "CanaryReplaced", c,
			"New canary %s replaces %s mid-rollout; analysis restarts from the first step", canary.Version, old.Version)
		return
	}
	m.event(v1alpha1.EventNormal, "Started", c, "Rollout of canary %s started by %s%s", canary.Version, actorOf(c), because(c))
}

// restart runs the plan again from its first step with the current
// canary, taking its traffic away until it is healthy.
func (m *machine) restart() {
	m.st.CurrentStep = 0
	m.st.Gate, m.st.Rollback, m.st.PausedAt, m.st.HookWait, m.st.HooksPassed = nil, nil, nil, nil, nil
	m.st.Watch = nil // a new rollout ends the watch of the last promotion
	m.st.Analysis = v1alpha1.AnalysisStatus{}
	m.st.Experiment = nil
	m.st.StartedAt = micro(m.now)
	m.st.StepStartedAt = micro(m.now)
	m.st.WaitingSince = micro(m.now)
	m.act(rollout.Action{Kind: rollout.ActionDeployCanary, Version: m.st.Canary})
	m.setWeight(0)
	m.setPhase(v1alpha1.PhaseProgressing, "waiting for canary "+m.st.Canary.Version+" to become healthy")
}

// resume restarts the clock: everything timed moves forward by the time
// spent paused, so a pause keeps its remaining soak time.
func (m *machine) resume() {
	if m.st.PausedAt != nil {
		d := m.now.Sub(m.st.PausedAt.Time)
		for _, t := range []**metav1.MicroTime{&m.st.Analysis.NextCheckAt, &m.st.StepStartedAt, &m.st.WaitingSince} {
			if *t != nil {
				*t = micro((*t).Add(d))
			}
		}
	}
	m.st.PausedAt = nil
	m.setPhase(v1alpha1.PhaseProgressing, "resumed")
}

// promoteOne goes past what the rollout waits for: the decision awaited,
// or else the current step. Once every step is done there is no step to
// skip: what is left (a passing check at the last weight, the
// confirm-promotion hooks) is skipped only by promote --full, on purpose.
func (m *machine) promoteOne(c rollout.Command) error {
	if m.st.Gate == nil && int(m.st.CurrentStep) >= len(m.plan.Steps) {
		return fmt.Errorf("all %d steps are done and the rollout waits for its promotion (%s); there is no step to skip: promote --full promotes now",
			len(m.plan.Steps), m.st.Message)
	}
	if m.st.Phase == v1alpha1.PhasePaused {
		m.resume()
	}
	if g := m.st.Gate; g != nil {
		m.passGate(*g, c)
		return nil
	}
	m.event(v1alpha1.EventNormal, "StepSkipped", c, "Step %d/%d (%s) skipped by %s%s",
		m.st.CurrentStep+1, len(m.plan.Steps), m.stepName(), actorOf(c), because(c))
	m.nextStep()
	return nil
}

// passGate records a person's go-ahead and goes past what the gate held
// back.
func (m *machine) passGate(g v1alpha1.Gate, c rollout.Command) {
	m.st.Gate = nil
	m.event(v1alpha1.EventNormal, "Approved", c, "%s decision approved by %s%s", g.Kind, actorOf(c), because(c))
	m.setPhase(v1alpha1.PhaseProgressing, "approved by "+actorOf(c))
	switch g.Kind {
	case v1alpha1.GatePause, v1alpha1.GateApproval:
		m.nextStep()
	case v1alpha1.GateStage:
		// The person let this stage's raise go ahead: set it without
		// asking again. A plan changed since (a reload) may have no
		// such raise at this step any more: the steps go on from it.
		if s, ok := m.currentStep(); ok && s.Kind == spec.StepSetWeight && m.setStepWeight(s) == proceed {
			m.nextStep()
		}
	case v1alpha1.GatePromotion:
		m.startPromotion()
	case v1alpha1.GateAnomaly:
		m.forgiveFailures()
	}
}

// forgiveFailures forgets the failures behind an anomaly a person judged
// acceptable, so that one more does not stop the rollout at once.
func (m *machine) forgiveFailures() {
	m.st.Analysis.FailedChecks = 0
	for i := range m.st.Analysis.Metrics {
		ms := &m.st.Analysis.Metrics[i]
		ms.Failed, ms.Inconclusive, ms.ConsecutiveErrors, ms.NoDataSince = 0, 0, 0, nil
	}
}

// undo switches straight back to the stable before the last promotion,
// without running the steps again.
func (m *machine) undo(c rollout.Command) error {
	if !m.undoWindowOpen() {
		return fmt.Errorf("the undo window of %s after the promotion has passed", m.plan.UndoWindow)
	}
	if w := m.st.Watch; w != nil && w.Outcome == "" {
		w.Outcome, w.NextCheckAt = v1alpha1.WatchUndone, nil
	}
	undone, previous := *m.st.Stable, *m.st.Previous
	m.st.Stable, m.st.Previous, m.st.Canary = &previous, nil, &undone
	m.st.CanaryWeight = 0
	m.act(rollout.Action{Kind: rollout.ActionPromote, Version: &previous})
	m.act(rollout.Action{Kind: rollout.ActionSetWeight, Weight: 0})
	reason := fmt.Sprintf("undone by %s%s", actorOf(c), because(c))
	m.st.Rollback = &v1alpha1.Rollback{Outcome: v1alpha1.PhaseRolledBack, Reason: reason, At: *micro(m.now)}
	m.setPhase(v1alpha1.PhaseRolledBack, reason)
	m.event(v1alpha1.EventWarning, "Undone", c, "Promotion of %s undone by %s%s: all traffic back on %s",
		undone.Version, actorOf(c), because(c), previous.Version)
	return nil
}

// undoWindowOpen reports whether the last promotion can still be undone
// at once: its undo window has not passed.
func (m *machine) undoWindowOpen() bool {
	return !m.now.After(m.st.PromotedAt.Add(m.plan.UndoWindow))
}

func actorOf(c rollout.Command) string {
	if c.Actor == "" {
		return "an operator"
	}
	return c.Actor
}

func because(c rollout.Command) string {
	if c.Reason == "" {
		return ""
	}
	return ": " + c.Reason
}
