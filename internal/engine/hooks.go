package engine

import (
	"fmt"
	"slices"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/rollout"
	"github.com/pipit-dev/pipit/internal/spec"
)

// HookResult is the answer of one run of gate hooks: all the hooks of the
// type said yes (OK), or not, with their messages.
type HookResult struct {
	Run     int64
	OK      bool
	Message string
}

// waitForHooks holds the rollout until the gate hooks of type t said yes
// for the occasion key. Until they have, it runs them, and runs them again
// once an analysis interval after each "no"; pre-rollout hooks that said
// no too often roll the rollout back.
func (m *machine) waitForHooks(t v1alpha1.HookType, key string) verdict {
	if len(m.plan.Hooks[t]) == 0 || slices.Contains(m.st.HooksPassed, key) {
		return proceed
	}
	w := m.st.HookWait
	if w == nil || w.Key != key {
		m.st.HookWait = &v1alpha1.HookWait{Type: t, Key: key, Since: *micro(m.now)}
		m.runHooks()
		return halted
	}
	for _, r := range m.in.HookResults {
		if r.Run != w.Run {
			continue
		}
		if r.OK {
			m.st.HooksPassed = append(m.st.HooksPassed, key)
			m.st.HookWait = nil
			m.event(v1alpha1.EventNormal, "HooksPassed", rollout.Command{}, "%s hooks said yes: %s", t, r.Message)
			return proceed
		}
		w.Message = r.Message
		if t == v1alpha1.HookPreRollout {
			if m.countPreRolloutFailure(w, r.Message) == halted {
				return halted
			}
		}
		m.st.Message = fmt.Sprintf("waiting for %s hooks: %s", t, r.Message)
	}
	if !m.now.Before(w.NextRunAt.Time) {
		m.runHooks()
	}
	return halted
}

// countPreRolloutFailure counts a "no" of the pre-rollout hooks, and rolls
// the rollout back once they said no more often than the failure limit.
func (m *machine) countPreRolloutFailure(w *v1alpha1.HookWait, message string) verdict {
	w.Failures++
	m.event(v1alpha1.EventWarning, "PreRolloutHookFailed", rollout.Command{}, "pre-rollout hooks failed (%d of %d allowed): %s",
		w.Failures, m.plan.Analysis.FailureLimit, message)
	if int(w.Failures) <= m.plan.Analysis.FailureLimit {
		return proceed
	}
	m.st.HookWait = nil
	m.rollBack(v1alpha1.PhaseRolledBack, "pre-rollout hooks failed: "+message, spec.HookMetricPrefix+string(v1alpha1.HookPreRollout))
	return halted
}

// runHooks starts a new run of the hooks waited on.
func (m *machine) runHooks() {
	w := m.st.HookWait
	m.st.HookRuns++
	w.Run = m.st.HookRuns
	w.NextRunAt = *micro(m.now.Add(m.plan.Analysis.Interval))
	m.act(rollout.Action{Kind: rollout.ActionRunHooks, Hook: w.Type, Run: w.Run})
	if w.Message == "" {
		m.st.Message = fmt.Sprintf("waiting for %s hooks", w.Type)
	}
}

// recordContractHookResults records the answers of the contract hooks in
// the history: after a promotion they are the only hooks the engine runs.
func (m *machine) recordContractHookResults() {
	for _, r := range m.in.HookResults {
		if r.OK {
			m.event(v1alpha1.EventNormal, "ContractHooksPassed", rollout.Command{}, "contract hooks said yes: %s", r.Message)
		} else {
			m.event(v1alpha1.EventWarning, "ContractHookFailed", rollout.Command{}, "contract hooks failed: %s", r.Message)
		}
	}
}

// closeUndoWindow ends the undo window of a promotion once it has passed,
// and then runs the contract hooks, which must never run while an undo is
// still possible.
func (m *machine) closeUndoWindow() {
	if m.st.PromotedAt == nil || m.now.Before(m.st.PromotedAt.Add(m.plan.UndoWindow)) {
		return
	}
	if m.st.Previous != nil {
		m.st.Previous = nil
		m.event(v1alpha1.EventNormal, "UndoWindowClosed", rollout.Command{}, "Undo window of %s closed", m.plan.UndoWindow)
	}
	if len(m.plan.Hooks[v1alpha1.HookContract]) > 0 && !m.st.Contracted {
		m.st.Contracted = true
		m.st.HookRuns++
		m.act(rollout.Action{Kind: rollout.ActionRunHooks, Hook: v1alpha1.HookContract, Run: m.st.HookRuns})
		m.event(v1alpha1.EventNormal, "ContractHooksStarted", rollout.Command{}, "Running contract hooks of %s", m.stableVersion())
	}
}
