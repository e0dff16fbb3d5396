package engine

import (
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/rollout"
	"github.com/pipit-dev/pipit/internal/spec"
)

func (m *machine) setWeight(w v1alpha1.Percent) {
	if w != m.st.CanaryWeight {
		m.st.Analysis.WeightPassedChecks = 0
	}
	m.st.CanaryWeight = w
	switch {
	case w == 0:
		m.st.Analysis.NextCheckAt = nil
	case m.st.Analysis.NextCheckAt == nil:
		// Checks start one interval after the canary first gets traffic,
		// so the first window holds real requests.
		m.st.Analysis.NextCheckAt = micro(m.now.Add(m.plan.Analysis.Interval))
	}
	m.act(rollout.Action{Kind: rollout.ActionSetWeight, Weight: w})
}

func (m *machine) act(a rollout.Action) { m.res.Actions = append(m.res.Actions, a) }

func (m *machine) setPhase(p v1alpha1.Phase, message string) {
	m.st.Phase = p
	m.st.Message = message
}

// event records a transition with the state it left the rollout in.
func (m *machine) event(typ, reason string, c rollout.Command, format string, args ...any) {
	actor := c.Actor
	if actor == "" {
		actor = "pipit"
	}
	m.res.Events = append(m.res.Events, v1alpha1.Event{
		Time:    *micro(m.now),
		Type:    typ,
		Reason:  reason,
		Message: fmt.Sprintf(format, args...),
		Phase:   m.st.Phase,
		Step:    m.st.CurrentStep,
		Weight:  m.st.CanaryWeight,
		Actor:   actor,
	})
}

// stepLabel names the current step for people, who count steps from 1
// where the status keeps the index from 0: "step 3/8: pause 10m0s", or
// "all 8 steps done" past the last one, never "step 9/8".
func (m *machine) stepLabel() string {
	n := len(m.plan.Steps)
	if int(m.st.CurrentStep) >= n {
		return fmt.Sprintf("all %d steps done", n)
	}
	return fmt.Sprintf("step %d/%d: %s", m.st.CurrentStep+1, n, m.stepName())
}

// stepOfSteps is the status' stepLabel: the current step counted from 1
// out of all, "3/6", or "6/6 done" past the last; "" when no rollout ran.
func (m *machine) stepOfSteps() string {
	n := len(m.plan.Steps)
	switch {
	case n == 0 || m.st.Phase == v1alpha1.PhaseIdle:
		return ""
	case int(m.st.CurrentStep) >= n:
		return fmt.Sprintf("%d/%d done", n, n)
	}
	return fmt.Sprintf("%d/%d", m.st.CurrentStep+1, n)
}

// currentStep is the step the rollout is on, false once past the plan's
// last step (all done, or a plan shortened by a reload).
func (m *machine) currentStep() (spec.PlanStep, bool) {
	if int(m.st.CurrentStep) >= len(m.plan.Steps) {
		return spec.PlanStep{}, false
	}
	return m.plan.Steps[m.st.CurrentStep], true
}

func (m *machine) stepName() string {
	if int(m.st.CurrentStep) >= len(m.plan.Steps) {
		return "promotion"
	}
	return m.plan.Steps[m.st.CurrentStep].Describe()
}

func (m *machine) stableVersion() string {
	if m.st.Stable == nil {
		return "(none)"
	}
	return m.st.Stable.Version
}

func micro(t time.Time) *metav1.MicroTime {
	mt := metav1.NewMicroTime(t)
	return &mt
}

// Condition types set on every status, for tools that wait on conditions
// (kubectl wait, kstatus) and for CI.
const (
	// ConditionProgressing is True while a rollout is under way.
	ConditionProgressing = "Progressing"
	// ConditionReady is True when stable serves everything and the last
	// rollout, if any, succeeded.
	ConditionReady = "Ready"
)

// Conditions derives the standard conditions from the phase, keeping the
// transition time of a condition whose status did not change.
func Conditions(st v1alpha1.RolloutStatus, now time.Time) []metav1.Condition {
	active := !st.Phase.Terminal() && st.Phase != v1alpha1.PhaseIdle
	ready := st.Phase == v1alpha1.PhaseIdle || st.Phase == v1alpha1.PhaseSucceeded
	want := []metav1.Condition{
		{Type: ConditionProgressing, Status: boolStatus(active), Reason: string(st.Phase), Message: st.Message},
		{Type: ConditionReady, Status: boolStatus(ready), Reason: string(st.Phase), Message: st.Message},
	}
	for i := range want {
		want[i].ObservedGeneration = st.ObservedGeneration
		want[i].LastTransitionTime = metav1.NewTime(now)
		for _, old := range st.Conditions {
			if old.Type == want[i].Type && old.Status == want[i].Status {
				want[i].LastTransitionTime = old.LastTransitionTime
			}
		}
	}
	return want
}

func boolStatus(b bool) metav1.ConditionStatus {
	if b {
		return metav1.ConditionTrue
	}
	return metav1.ConditionFalse
}
