package engine

import (
	"fmt"
	"reflect"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/rollout"
)

// Allowed reports whether cmd can be applied to a rollout in status st, and
// why not. The control API calls it to refuse a command up front with a
// clear message; Step applies the same rule.
func Allowed(st v1alpha1.RolloutStatus, cmd rollout.Command) error {
	p := st.Phase
	if p == "" {
		p = v1alpha1.PhaseIdle
	}
	active := !p.Terminal() && p != v1alpha1.PhaseIdle
	switch cmd.Kind {
	case rollout.CommandDeploy:
		if cmd.Canary == nil || cmd.Canary.Version == "" {
			return fmt.Errorf("deploy needs a canary version")
		}
		if st.Stable != nil && st.Stable.ID() == cmd.Canary.ID() && !active {
			return fmt.Errorf("version %s is already the stable version", cmd.Canary.Version)
		}
		// The whole description counts: the same label at another URL, or
		// run another way, is a new canary.
		if active && st.Canary != nil && reflect.DeepEqual(*st.Canary, *cmd.Canary) {
			return fmt.Errorf("version %s is already being rolled out", cmd.Canary.Version)
		}
		if p == v1alpha1.PhasePromoting || p == v1alpha1.PhaseRollingBack {
			return fmt.Errorf("the rollout is %s; deploy again when it has finished", p)
		}
		return nil
	case rollout.CommandPause:
		return phaseIn(p, cmd.Kind, v1alpha1.PhaseProgressing)
	case rollout.CommandResume:
		return phaseIn(p, cmd.Kind, v1alpha1.PhasePaused)
	case rollout.CommandPromote:
		return phaseIn(p, cmd.Kind, v1alpha1.PhaseProgressing, v1alpha1.PhasePaused, v1alpha1.PhaseAwaitingDecision)
	case rollout.CommandPromoteFull, rollout.CommandAbort:
		return phaseIn(p, cmd.Kind, v1alpha1.PhaseProgressing, v1alpha1.PhasePaused, v1alpha1.PhaseAwaitingDecision)
	case rollout.CommandApprove, rollout.CommandReject:
		return phaseIn(p, cmd.Kind, v1alpha1.PhaseAwaitingDecision)
	case rollout.CommandSetWeight:
		if err := phaseIn(p, cmd.Kind, v1alpha1.PhaseProgressing, v1alpha1.PhasePaused, v1alpha1.PhaseAwaitingDecision); err != nil {
			return err
		}
		return checkManualWeight(cmd.Weight)
	case rollout.CommandUndo:
		if err := phaseIn(p, cmd.Kind, v1alpha1.PhaseSucceeded); err != nil {
			return err
		}
		if st.Previous == nil {
			return fmt.Errorf("nothing to undo: the undo window of the last promotion has closed")
		}
		return nil
	case rollout.CommandRetry:
		if err := phaseIn(p, cmd.Kind, v1alpha1.PhaseRolledBack, v1alpha1.PhaseAborted, v1alpha1.PhaseFailed); err != nil {
			return err
		}
		if st.Canary == nil {
			return fmt.Errorf("there is no canary to retry")
		}
		return nil
	}
	return fmt.Errorf("unknown command %q", cmd.Kind)
}

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

func phaseIn(p v1alpha1.Phase, kind rollout.CommandKind, allowed ...v1alpha1.Phase) error {
	for _, a := range allowed {
		if p == a {
			return nil
		}
	}
	return fmt.Errorf("cannot %s a rollout that is %s", kind, p)
}

// command applies one operator command, or returns why it cannot.
func (m *machine) command(c rollout.Command) error {
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
		m.promoteOne(c)
	case rollout.CommandReject:
		m.rollBack(v1alpha1.PhaseAborted, "rejected by "+actorOf(c)+because(c), "")
	case rollout.CommandUndo:
		return m.undo(c)
	case rollout.CommandSetWeight:
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
func (m *machine) deploy(c rollout.Command) {
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
	m.st.Analysis = v1alpha1.AnalysisStatus{}
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
// or else the current step.
func (m *machine) promoteOne(c rollout.Command) {
	if m.st.Phase == v1alpha1.PhasePaused {
		m.resume()
	}
	if g := m.st.Gate; g != nil {
		m.st.Gate = nil
		m.event(v1alpha1.EventNormal, "Approved", c, "%s decision approved by %s%s", g.Kind, actorOf(c), because(c))
		m.setPhase(v1alpha1.PhaseProgressing, "approved by "+actorOf(c))
		switch g.Kind {
		case v1alpha1.GatePause, v1alpha1.GateApproval:
			m.nextStep()
		case v1alpha1.GateStage:
			m.runStep(true)
		case v1alpha1.GatePromotion:
			m.startPromotion()
		case v1alpha1.GateAnomaly:
			// The person judged the anomaly acceptable: forget the failures
			// that caused it, so one more does not stop the rollout at once.
			m.st.Analysis.FailedChecks = 0
			for i := range m.st.Analysis.Metrics {
				ms := &m.st.Analysis.Metrics[i]
				ms.Failed, ms.Inconclusive, ms.ConsecutiveErrors, ms.NoDataSince = 0, 0, 0, nil
			}
		}
		return
	}
	m.event(v1alpha1.EventNormal, "StepSkipped", c, "Step %d (%s) skipped by %s%s",
		m.st.CurrentStep+1, m.stepName(), actorOf(c), because(c))
	m.nextStep()
}

// undo switches straight back to the stable before the last promotion,
// without running the steps again.
func (m *machine) undo(c rollout.Command) error {
	if m.now.After(m.st.PromotedAt.Add(m.plan.UndoWindow)) {
		return fmt.Errorf("the undo window of %s after the promotion has passed", m.plan.UndoWindow)
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
