package engine

import (
	"fmt"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/rollout"
	"github.com/pipit-dev/pipit/internal/spec"
)

// progress runs a progressing rollout: health first, then the check that
// may be due, then as many steps as the time allows.
func (m *machine) progress() {
	beforeTraffic := m.st.CurrentStep == 0 && m.st.CanaryWeight == 0
	if beforeTraffic && !m.hooksPass(v1alpha1.HookConfirmRollout, string(v1alpha1.HookConfirmRollout)) {
		return
	}
	if !m.canaryReady() || !m.noAlarm() || m.runCheck() {
		return
	}
	if beforeTraffic && !m.hooksPass(v1alpha1.HookPreRollout, string(v1alpha1.HookPreRollout)) {
		return
	}
	// Each pass runs one step; steps that take no time (setWeight) let the
	// next run in the same decision. The bound is a guard, not a limit.
	for range len(m.plan.Steps) + 1 {
		if m.st.Phase != v1alpha1.PhaseProgressing {
			return
		}
		if int(m.st.CurrentStep) >= len(m.plan.Steps) {
			m.stepsDone()
			return
		}
		if !m.runStep(false) {
			return
		}
	}
}

// canaryReady handles the canary's health. Before the canary receives
// traffic the rollout waits for it to be up, within the progress deadline;
// once it receives traffic, a canary that goes down is an anomaly at once,
// and so is one that failed for good at any time.
func (m *machine) canaryReady() bool {
	if !m.watchCanaryHealth() {
		return false
	}
	if m.st.CanaryWeight > 0 {
		return true
	}
	if h := m.canaryHealth(); h != rollout.HealthUp {
		if m.st.WaitingSince == nil {
			m.st.WaitingSince = micro(m.now)
		}
		if m.deadlinePassed() {
			m.rollBack(v1alpha1.PhaseFailed, fmt.Sprintf("canary %s did not become healthy within the progress deadline (%s)",
				m.st.Canary.Version, m.plan.ProgressDeadline), "")
		}
		return false
	}
	if m.st.WaitingSince != nil {
		m.st.WaitingSince = nil
		m.st.Message = "canary " + m.st.Canary.Version + " is healthy"
		m.event(v1alpha1.EventNormal, "CanaryReady", rollout.Command{}, "Canary %s is healthy", m.st.Canary.Version)
	}
	return true
}

// canaryHealth is the observed health if it describes the current canary.
func (m *machine) canaryHealth() rollout.Health {
	if m.st.Canary == nil || m.in.Observed.CanaryVersion != m.st.Canary.ID() {
		return rollout.HealthUnknown
	}
	return m.in.Observed.CanaryHealth
}

// watchWhileWaiting keeps watching health and checks while a person
// decides, so a canary that breaks meanwhile is still rolled back.
func (m *machine) watchWhileWaiting() {
	if m.approvalExpired() {
		return
	}
	if m.watchCanaryHealth() && m.noAlarm() {
		m.runCheck()
	}
}

// approvalExpired applies an approval's timeout policy once it passed, and
// reports whether the rollout was rolled back for it.
func (m *machine) approvalExpired() bool {
	g := m.st.Gate
	if g == nil || g.Expires == nil || g.Expired || m.now.Before(g.Expires.Time) {
		return false
	}
	s := m.plan.Steps[m.st.CurrentStep]
	if s.OnTimeout == v1alpha1.ApprovalWait {
		g.Expired = true
		m.event(v1alpha1.EventWarning, "ApprovalExpired", rollout.Command{}, "No approval within %s; still waiting", s.Duration)
		return false
	}
	m.rollBack(v1alpha1.PhaseRolledBack, fmt.Sprintf("no approval within %s (onTimeout: rollback)", s.Duration), "")
	return true
}

// noAlarm turns an alarm from a continuous test into an anomaly at once,
// while the canary receives traffic; it reports whether there was none.
func (m *machine) noAlarm() bool {
	if m.st.CanaryWeight == 0 || len(m.in.Alarms) == 0 {
		return true
	}
	a := m.in.Alarms[0]
	m.anomaly(a.Metric+": "+a.Reason, a.Metric)
	return false
}

// watchCanaryHealth turns a canary that went down while it receives
// traffic, or failed for good, into an anomaly; it reports whether the
// canary is fine.
func (m *machine) watchCanaryHealth() bool {
	if m.canaryHealth() == rollout.HealthDown && (m.st.CanaryWeight > 0 || m.in.Observed.CanaryFailed) {
		m.anomaly(fmt.Sprintf("canary %s is down: %s", m.st.Canary.Version, m.in.Observed.CanaryReason), "")
		return false
	}
	return true
}

// runStep runs the current step and reports whether it is done. approved
// is true when a person just let a manual stage go ahead.
func (m *machine) runStep(approved bool) bool {
	s := m.plan.Steps[m.st.CurrentStep]
	switch s.Kind {
	case spec.StepSetWeight:
		if m.plan.Decision == v1alpha1.DecisionManual && !approved && m.st.CanaryWeight > 0 {
			m.gate(v1alpha1.GateStage, fmt.Sprintf("stage at %s done; promote to go to %s", m.st.CanaryWeight, s.Weight))
			return false
		}
		key := fmt.Sprintf("%s@%d", v1alpha1.HookConfirmTrafficIncrease, m.st.CurrentStep)
		if s.Weight > m.st.CanaryWeight && !m.hooksPass(v1alpha1.HookConfirmTrafficIncrease, key) {
			return false
		}
		m.setWeight(s.Weight)
		m.event(v1alpha1.EventNormal, "WeightChanged", rollout.Command{}, "Routed %s of traffic to canary %s (%s)",
			s.Weight, m.st.Canary.Version, m.stepLabel())
	case spec.StepPause:
		if s.Duration == 0 {
			m.gate(v1alpha1.GatePause, fmt.Sprintf("paused at %s until promoted (%s)", m.st.CanaryWeight, m.stepLabel()))
			return false
		}
		if m.now.Before(m.st.StepStartedAt.Add(s.Duration)) {
			m.st.Message = fmt.Sprintf("soaking at %s until %s", m.st.CanaryWeight, m.st.StepStartedAt.Add(s.Duration).UTC().Format("15:04:05"))
			return false
		}
		m.event(v1alpha1.EventNormal, "PauseEnded", rollout.Command{}, "Soaked %s at %s (%s)", s.Duration, m.st.CanaryWeight, m.stepLabel())
	case spec.StepApproval:
		reason := s.Message
		if reason == "" {
			reason = fmt.Sprintf("approval needed at %s (%s): pipit approve to go on, pipit reject to roll back", m.st.CanaryWeight, m.stepLabel())
		}
		m.gate(v1alpha1.GateApproval, reason)
		if s.Duration > 0 {
			m.st.Gate.Expires = micro(m.now.Add(s.Duration))
		}
		return false
	case spec.StepAnalysis:
		if int(m.st.Analysis.StepPassedChecks) < s.Checks {
			m.st.Message = fmt.Sprintf("analysing at %s: %d of %d checks passed", m.st.CanaryWeight, m.st.Analysis.StepPassedChecks, s.Checks)
			return false
		}
	}
	m.nextStep()
	return true
}

// stepsDone ends the steps: promotion, or a person's go-ahead first in
// manual mode.
func (m *machine) stepsDone() {
	// Never promote on missing data: with metrics to check, one check must
	// have passed at the last weight (the no-data policy bounds the wait).
	if len(m.plan.Analysis.Metrics) > 0 && m.st.Analysis.WeightPassedChecks == 0 {
		m.st.Message = fmt.Sprintf("all steps done; waiting for a passing check at %s before promotion", m.st.CanaryWeight)
		return
	}
	if !m.hooksPass(v1alpha1.HookConfirmPromotion, string(v1alpha1.HookConfirmPromotion)) {
		return
	}
	if m.plan.Decision == v1alpha1.DecisionManual {
		m.gate(v1alpha1.GatePromotion, fmt.Sprintf("all steps passed at %s; promote to make canary %s stable", m.st.CanaryWeight, m.st.Canary.Version))
		return
	}
	m.startPromotion()
}

func (m *machine) nextStep() {
	m.st.CurrentStep++
	m.st.StepStartedAt = micro(m.now)
	m.st.Analysis.StepPassedChecks = 0
}

// anomaly reacts to a failed check or a canary gone down: roll back, or in
// hybrid mode wait for a person instead.
func (m *machine) anomaly(reason, metric string) {
	if m.plan.Decision != v1alpha1.DecisionHybrid {
		m.rollBack(v1alpha1.PhaseRolledBack, reason, metric)
		return
	}
	if m.st.Gate != nil && m.st.Gate.Kind == v1alpha1.GateAnomaly {
		return
	}
	m.st.PausedAt = nil
	m.gate(v1alpha1.GateAnomaly, "anomaly detected, manual review required: "+reason)
}

// gate makes the rollout wait for a person.
func (m *machine) gate(kind v1alpha1.GateKind, reason string) {
	m.st.Gate = &v1alpha1.Gate{Kind: kind, Since: *micro(m.now), Reason: reason}
	m.setPhase(v1alpha1.PhaseAwaitingDecision, reason)
	typ := v1alpha1.EventNormal
	if kind == v1alpha1.GateAnomaly {
		typ = v1alpha1.EventWarning
	}
	m.event(typ, "AwaitingDecision", rollout.Command{}, "Waiting for a person: %s", reason)
}

// startPromotion sends all traffic to the canary and asks the target to
// make it the stable version.
func (m *machine) startPromotion() {
	m.st.Gate, m.st.PausedAt = nil, nil
	m.st.WaitingSince = micro(m.now)
	m.setWeight(v1alpha1.FullWeight)
	m.act(rollout.Action{Kind: rollout.ActionPromote, Version: m.st.Canary})
	m.setPhase(v1alpha1.PhasePromoting, "promoting canary "+m.st.Canary.Version)
	m.event(v1alpha1.EventNormal, "Promoting", rollout.Command{}, "Routed 100%% of traffic to canary %s; making it the stable version", m.st.Canary.Version)
}

// finishPromotion completes once the target serves the canary as stable.
func (m *machine) finishPromotion() {
	if m.in.Observed.StableVersion != m.st.Canary.ID() {
		if m.deadlinePassed() {
			m.rollBack(v1alpha1.PhaseFailed, fmt.Sprintf("promotion of %s did not complete within the progress deadline (%s)",
				m.st.Canary.Version, m.plan.ProgressDeadline), "")
			return
		}
		m.act(rollout.Action{Kind: rollout.ActionPromote, Version: m.st.Canary})
		return
	}
	promoted := *m.st.Canary
	if m.plan.UndoWindow > 0 {
		m.st.Previous = m.st.Stable
	}
	m.st.Stable, m.st.Canary = &promoted, nil
	m.st.PromotedAt, m.st.Contracted = micro(m.now), false
	m.setWeight(0)
	m.act(rollout.Action{Kind: rollout.ActionRetireCanary, Version: &promoted})
	m.st.WaitingSince = nil
	m.setPhase(v1alpha1.PhaseSucceeded, "canary "+promoted.Version+" promoted")
	m.event(v1alpha1.EventNormal, "Promoted", rollout.Command{}, "Promotion completed: %s is now the stable version", promoted.Version)
}

// rollBack takes all traffic off the canary and records why.
func (m *machine) rollBack(outcome v1alpha1.Phase, reason, metric string) {
	m.st.Rollback = &v1alpha1.Rollback{Outcome: outcome, Reason: reason, Metric: metric, At: *micro(m.now)}
	m.st.Gate, m.st.PausedAt, m.st.HookWait = nil, nil, nil
	m.st.WaitingSince = micro(m.now)
	m.setWeight(0)
	m.act(rollout.Action{Kind: rollout.ActionRetireCanary, Version: m.st.Canary})
	m.setPhase(v1alpha1.PhaseRollingBack, "rolling back: "+reason)
	m.event(v1alpha1.EventWarning, "RollingBack", rollout.Command{}, "Rolling back canary %s: %s", m.st.Canary.Version, reason)
}

// finishRollback completes once the router sends the canary nothing.
func (m *machine) finishRollback() {
	if m.in.Observed.Weight != 0 {
		m.setWeight(0)
		m.act(rollout.Action{Kind: rollout.ActionRetireCanary, Version: m.st.Canary})
		return
	}
	rb := m.st.Rollback
	m.st.WaitingSince = nil
	m.setPhase(rb.Outcome, rb.Reason)
	m.event(v1alpha1.EventWarning, string(rb.Outcome), rollout.Command{}, "%s: all traffic on stable %s; canary %s: %s",
		rb.Outcome, m.stableVersion(), m.st.Canary.Version, rb.Reason)
}

func (m *machine) deadlinePassed() bool {
	return m.st.WaitingSince != nil && !m.now.Before(m.st.WaitingSince.Add(m.plan.ProgressDeadline))
}
