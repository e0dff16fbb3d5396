package engine

import (
	"fmt"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/rollout"
	"github.com/pipit-dev/pipit/internal/spec"
)

// verdict is what a rule that may hold the rollout back decided, so that
// the next rule runs only when this one let the rollout go on.
type verdict int

const (
	// proceed: nothing held the rollout back; the next rule may run.
	proceed verdict = iota
	// halted: this decision goes no further. The rollout waits (for time,
	// health, hooks or a person), or the rule gated or rolled it back.
	halted
)

// progress runs a progressing rollout, rule by rule in the order they
// apply: the confirm-rollout hooks before any traffic, anomalies, the
// canary's health before it gets traffic, the check that may be due, the
// pre-rollout hooks, then as many steps as the time allows.
func (m *machine) progress() {
	if m.waitForHooksBeforeTraffic(v1alpha1.HookConfirmRollout) == halted {
		return
	}
	if m.watchForAnomalies() == halted {
		return
	}
	if m.waitForCanaryHealth() == halted {
		return
	}
	if m.runDueCheck() == halted {
		return
	}
	if m.waitForHooksBeforeTraffic(v1alpha1.HookPreRollout) == halted {
		return
	}
	m.openPreview()
	m.runSteps()
}

// openPreview opens a blue-green rollout's new version for checks, once it
// is healthy and the hooks before traffic said yes: it gets no share of
// the traffic, only its preview's requests (and those the traffic rules
// send it), and the first check comes one interval later, so that its
// window holds them.
func (m *machine) openPreview() {
	if !m.plan.BlueGreen || exposed(m.st) {
		return
	}
	m.st.Previewing = true
	m.st.Analysis.NextCheckAt = micro(m.now.Add(m.plan.Analysis.Interval))
	m.st.Message = "previewing " + m.st.Canary.Version + " with no user traffic"
	m.event(v1alpha1.EventNormal, "PreviewOpened", rollout.Command{}, "New version %s is open on its preview, with no user traffic; stable %s serves everyone",
		m.st.Canary.Version, m.stableVersion())
}

// waitForHooksBeforeTraffic waits for the gate hooks of type t once, before
// the canary first gets traffic.
func (m *machine) waitForHooksBeforeTraffic(t v1alpha1.HookType) verdict {
	if m.st.CurrentStep > 0 || exposed(m.st) {
		return proceed
	}
	return m.waitForHooks(t, string(t))
}

// runSteps runs the current step and, while steps complete at once
// (setWeight), the next ones in the same decision; after the last step it
// turns to promotion. The bound is a guard, not a limit.
func (m *machine) runSteps() {
	for range len(m.plan.Steps) + 1 {
		if int(m.st.CurrentStep) >= len(m.plan.Steps) {
			m.finishSteps()
			return
		}
		if m.runStep() == halted {
			return
		}
	}
}

// waitForCanaryHealth holds the rollout until the canary is up, before it
// gets traffic, within the progress deadline; it rolls the rollout back
// (Failed) once the deadline passed. A canary that gets traffic already is
// watched by watchForAnomalies instead.
func (m *machine) waitForCanaryHealth() verdict {
	if exposed(m.st) {
		return proceed
	}
	if m.canaryHealth() != rollout.HealthUp {
		if m.st.WaitingSince == nil {
			m.st.WaitingSince = micro(m.now)
		}
		if m.deadlinePassed() {
			m.rollBack(v1alpha1.PhaseFailed, fmt.Sprintf("canary %s did not become healthy within the progress deadline (%s)",
				m.st.Canary.Version, m.plan.ProgressDeadline), "")
		}
		return halted
	}
	if m.st.WaitingSince != nil {
		m.st.WaitingSince = nil
		m.st.Message = "canary " + m.st.Canary.Version + " is healthy"
		m.event(v1alpha1.EventNormal, "CanaryReady", rollout.Command{}, "Canary %s is healthy", m.st.Canary.Version)
	}
	return proceed
}

// canaryHealth is the observed health if it describes the current canary.
func (m *machine) canaryHealth() rollout.Health {
	if m.st.Canary == nil || m.in.Observed.CanaryVersion != m.st.Canary.ID() {
		return rollout.HealthUnknown
	}
	return m.in.Observed.CanaryHealth
}

// watchWhileAwaitingDecision keeps watching health and checks while a
// person decides, so a canary that breaks meanwhile is still rolled back;
// an approval's timeout applies first.
func (m *machine) watchWhileAwaitingDecision() {
	if m.applyApprovalTimeout() == halted {
		return
	}
	if m.watchForAnomalies() == halted {
		return
	}
	m.runDueCheck()
}

// applyApprovalTimeout applies an approval's timeout policy once it
// passed: keep waiting (marking the gate expired), or roll back, which
// halts the rollout.
func (m *machine) applyApprovalTimeout() verdict {
	g := m.st.Gate
	if g == nil || g.Expires == nil || g.Expired || m.now.Before(g.Expires.Time) {
		return proceed
	}
	if g.Kind == v1alpha1.GatePromotion {
		m.event(v1alpha1.EventNormal, "AutoPromoted", rollout.Command{}, "Nobody promoted %s within %s (autoPromotionAfter): promoting it",
			m.st.Canary.Version, g.Expires.Sub(g.Since.Time))
		m.startPromotion()
		return halted
	}
	s, ok := m.currentStep()
	if !ok || s.Kind != spec.StepApproval {
		// The plan changed since the gate opened (a reload) and has no
		// approval at this step: its timeout policy went with it, and
		// the gate waits for a person.
		g.Expired = true
		return proceed
	}
	if s.OnTimeout == v1alpha1.ApprovalWait {
		g.Expired = true
		m.event(v1alpha1.EventWarning, "ApprovalExpired", rollout.Command{}, "No approval within %s; still waiting", s.Duration)
		return proceed
	}
	m.rollBack(v1alpha1.PhaseRolledBack, fmt.Sprintf("no approval within %s (onTimeout: rollback)", s.Duration), "")
	return halted
}

// watchForAnomalies reacts to a canary gone down, then to an alarm: either
// is an anomaly at once, which halts the rollout.
func (m *machine) watchForAnomalies() verdict {
	if m.reactToCanaryDown() == halted {
		return halted
	}
	return m.reactToAlarm()
}

// reactToAlarm turns an alarm from a continuous test into an anomaly at
// once, while the canary gets traffic.
func (m *machine) reactToAlarm() verdict {
	if !exposed(m.st) || len(m.in.Alarms) == 0 {
		return proceed
	}
	a := m.in.Alarms[0]
	m.reactToAnomaly(a.Metric+": "+a.Reason, a.Metric)
	return halted
}

// reactToCanaryDown turns a canary that went down while it gets traffic,
// or failed for good, into an anomaly.
func (m *machine) reactToCanaryDown() verdict {
	if m.canaryHealth() == rollout.HealthDown && (exposed(m.st) || m.in.Observed.CanaryFailed) {
		m.reactToAnomaly(fmt.Sprintf("canary %s is down: %s", m.st.Canary.Version, m.in.Observed.CanaryReason), "")
		return halted
	}
	return proceed
}

// runStep runs the current step, and moves to the next one when it is
// done (proceed).
func (m *machine) runStep() verdict {
	s := m.plan.Steps[m.st.CurrentStep]
	v := proceed
	switch s.Kind {
	case spec.StepSetWeight:
		v = m.runSetWeightStep(s)
	case spec.StepPause:
		v = m.runPauseStep(s)
	case spec.StepApproval:
		v = m.runApprovalStep(s)
	case spec.StepAnalysis:
		v = m.runAnalysisStep(s)
	case spec.StepExperiment:
		v = m.runExperimentStep()
	}
	if v == proceed {
		m.nextStep()
	}
	return v
}

// runSetWeightStep sets the step's weight. In manual mode each raise after
// the first waits for a person first (a stage gate); once the person said
// go, the raise waits only for the confirm-traffic-increase hooks, and
// their answer decides it without asking the person again.
func (m *machine) runSetWeightStep(s spec.PlanStep) verdict {
	approved := m.st.HookWait != nil && m.st.HookWait.Key == m.raiseKey()
	if m.plan.Decision == v1alpha1.DecisionManual && m.st.CanaryWeight > 0 && !approved {
		m.awaitDecision(v1alpha1.GateStage, fmt.Sprintf("stage at %s done; promote to go to %s", m.st.CanaryWeight, s.Weight))
		return halted
	}
	return m.setStepWeight(s)
}

// raiseKey is the occasion of the confirm-traffic-increase hooks of the
// current step.
func (m *machine) raiseKey() string {
	return fmt.Sprintf("%s@%d", v1alpha1.HookConfirmTrafficIncrease, m.st.CurrentStep)
}

// setStepWeight sets a setWeight step's weight, once the
// confirm-traffic-increase hooks said yes to a raise.
func (m *machine) setStepWeight(s spec.PlanStep) verdict {
	if s.Weight > m.st.CanaryWeight {
		if m.waitForHooks(v1alpha1.HookConfirmTrafficIncrease, m.raiseKey()) == halted {
			return halted
		}
	}
	m.setWeight(s.Weight)
	m.event(v1alpha1.EventNormal, "WeightChanged", rollout.Command{}, "Routed %s of traffic to canary %s (%s)",
		s.Weight, m.st.Canary.Version, m.stepLabel())
	return proceed
}

// runPauseStep soaks for the pause's duration, or waits for a person when
// it has none.
func (m *machine) runPauseStep(s spec.PlanStep) verdict {
	if s.Duration == 0 {
		m.awaitDecision(v1alpha1.GatePause, fmt.Sprintf("paused at %s until promoted (%s)", m.st.CanaryWeight, m.stepLabel()))
		return halted
	}
	if end := m.st.StepStartedAt.Add(s.Duration); m.now.Before(end) {
		m.st.Message = fmt.Sprintf("soaking at %s until %s UTC", m.st.CanaryWeight, end.UTC().Format("15:04:05"))
		return halted
	}
	m.event(v1alpha1.EventNormal, "PauseEnded", rollout.Command{}, "Soaked %s at %s (%s)", s.Duration, m.st.CanaryWeight, m.stepLabel())
	return proceed
}

// runApprovalStep waits for a person's approval, until the step's timeout
// if it has one.
func (m *machine) runApprovalStep(s spec.PlanStep) verdict {
	reason := s.Message
	if reason == "" {
		reason = fmt.Sprintf("approval needed at %s (%s): pipit approve to go on, pipit reject to roll back", m.st.CanaryWeight, m.stepLabel())
	}
	m.awaitDecision(v1alpha1.GateApproval, reason)
	if s.Duration > 0 {
		m.st.Gate.Expires = micro(m.now.Add(s.Duration))
	}
	return halted
}

// runAnalysisStep waits until the step's number of checks passed.
func (m *machine) runAnalysisStep(s spec.PlanStep) verdict {
	if int(m.st.Analysis.StepPassedChecks) < s.Checks {
		m.st.Message = fmt.Sprintf("analysing at %s: %d of %d checks passed", m.st.CanaryWeight, m.st.Analysis.StepPassedChecks, s.Checks)
		return halted
	}
	return proceed
}

// finishSteps ends the steps: promotion, or a person's go-ahead first in
// manual mode.
func (m *machine) finishSteps() {
	// Never promote on missing data: with metrics to check, one check must
	// have passed at the last weight (the no-data policy bounds the wait).
	if len(m.plan.Analysis.Metrics) > 0 && m.st.Analysis.WeightPassedChecks == 0 {
		m.st.Message = fmt.Sprintf("all steps done; waiting for a passing check at %s before promotion", m.st.CanaryWeight)
		return
	}
	if m.waitForHooks(v1alpha1.HookConfirmPromotion, string(v1alpha1.HookConfirmPromotion)) == halted {
		return
	}
	if m.plan.Decision == v1alpha1.DecisionManual {
		m.awaitPromotion()
		return
	}
	m.startPromotion()
}

// awaitPromotion waits for a person to promote, until AutoPromotionAfter
// when the plan sets it (applyApprovalTimeout then promotes).
func (m *machine) awaitPromotion() {
	reason := fmt.Sprintf("all steps passed at %s; promote to make canary %s stable", m.st.CanaryWeight, m.st.Canary.Version)
	if m.plan.BlueGreen {
		reason = fmt.Sprintf("preview of %s passed its checks; promote to switch all traffic to it", m.st.Canary.Version)
	}
	if d := m.plan.AutoPromotionAfter; d > 0 {
		reason += fmt.Sprintf(" (or it is promoted on its own in %s)", d)
	}
	m.awaitDecision(v1alpha1.GatePromotion, reason)
	if d := m.plan.AutoPromotionAfter; d > 0 {
		m.st.Gate.Expires = micro(m.now.Add(d))
	}
}

// nextStep starts the next step, with its own clock and checks. Past the
// last step the index stays at the number of steps, also when a reload
// left fewer steps than the index.
func (m *machine) nextStep() {
	m.st.CurrentStep = min(m.st.CurrentStep+1, int32(len(m.plan.Steps)))
	m.st.StepStartedAt = micro(m.now)
	m.st.Analysis.StepPassedChecks = 0
}

// reactToAnomaly reacts to a failed check, an alarm or a canary gone down:
// roll back, or in hybrid mode wait for a person instead.
func (m *machine) reactToAnomaly(reason, metric string) {
	if m.plan.Decision != v1alpha1.DecisionHybrid {
		m.rollBack(v1alpha1.PhaseRolledBack, reason, metric)
		return
	}
	if m.st.Gate != nil && m.st.Gate.Kind == v1alpha1.GateAnomaly {
		return
	}
	m.st.PausedAt = nil
	m.awaitDecision(v1alpha1.GateAnomaly, "anomaly detected, manual review required: "+reason)
}

// awaitDecision makes the rollout wait for a person.
func (m *machine) awaitDecision(kind v1alpha1.GateKind, reason string) {
	m.st.Gate = &v1alpha1.Gate{Kind: kind, Since: *micro(m.now), Reason: reason}
	m.setPhase(v1alpha1.PhaseAwaitingDecision, reason)
	typ := v1alpha1.EventNormal
	if kind == v1alpha1.GateAnomaly {
		typ = v1alpha1.EventWarning
	}
	m.event(typ, "AwaitingDecision", rollout.Command{}, "Waiting for a person: %s", reason)
}

// startPromotion sends all traffic to the canary and asks the target to
// make it the stable version. For a blue-green rollout this is the
// switch: all traffic moves from none to all in one weight change, which
// every router applies at once (one routing table, one route update).
func (m *machine) startPromotion() {
	m.stopExperiment("the treatment is promoted without one")
	m.st.Gate, m.st.PausedAt = nil, nil
	m.st.WaitingSince = micro(m.now)
	m.recordBaselines()
	m.st.Previewing = false
	m.setWeight(v1alpha1.FullWeight)
	m.act(rollout.Action{Kind: rollout.ActionPromote, Version: m.st.Canary})
	m.setPhase(v1alpha1.PhasePromoting, "promoting canary "+m.st.Canary.Version)
	if m.plan.BlueGreen {
		m.event(v1alpha1.EventNormal, "Promoting", rollout.Command{}, "Switched all traffic from %s to %s at once; making it the stable version",
			m.stableVersion(), m.st.Canary.Version)
		return
	}
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
	m.startWatch()
}

// rollBack takes all traffic off the canary and records why.
func (m *machine) rollBack(outcome v1alpha1.Phase, reason, metric string) {
	m.stopExperiment(reason)
	m.st.Rollback = &v1alpha1.Rollback{Outcome: outcome, Reason: reason, Metric: metric, At: *micro(m.now)}
	m.st.Gate, m.st.PausedAt, m.st.HookWait = nil, nil, nil
	m.st.WaitingSince = micro(m.now)
	m.st.Previewing = false
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

// deadlinePassed reports whether the progress deadline passed since the
// rollout began waiting.
func (m *machine) deadlinePassed() bool {
	return m.st.WaitingSince != nil && !m.now.Before(m.st.WaitingSince.Add(m.plan.ProgressDeadline))
}
