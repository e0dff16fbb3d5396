package engine

import (
	"fmt"
	"math"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/analysis"
	"github.com/pipit-dev/pipit/internal/analysis/stats"
	"github.com/pipit-dev/pipit/internal/rollout"
	"github.com/pipit-dev/pipit/internal/spec"
)

// errExperimentWeight refuses a share of traffic for an experiment, whose
// split holds from its start to its verdict: another share would break
// the sample-ratio check and mix the variants' users.
var errExperimentWeight = fmt.Errorf("an experiment holds its split until its verdict: promote to end it with the treatment, abort to end it with the control")

// runExperimentStep holds an experiment's split until its verdict: each
// check that ran in this decision (the guardrails passed it or held) is
// judged, and the step is done once the treatment won. A verdict for the
// control, or none, has rolled the treatment back.
func (m *machine) runExperimentStep() verdict {
	ex := m.plan.Experiment
	if ex == nil {
		return proceed // the plan lost its experiment on a reload
	}
	x := m.st.Experiment
	if x == nil {
		x = &v1alpha1.ExperimentStatus{Goal: ex.Goal, PromoteIf: ex.PromoteIf, StartedAt: micro(m.now)}
		m.st.Experiment = x
		m.openTreatmentGroup(ex)
		m.event(v1alpha1.EventNormal, "ExperimentStarted", rollout.Command{},
			"Experiment started: treatment %s gets %s of the users, control %s the rest; goal %s, promoted if %s",
			m.st.Canary.Version, ex.Split, m.stableVersion(), ex.Goal, ex.PromoteIf)
	}
	if x.Winner == "" && m.checked {
		m.judgeExperiment(ex, x)
	}
	switch x.Winner {
	case v1alpha1.WinnerTreatment:
		return proceed
	case "":
		m.st.Message = "experiment running; " + x.Summary()
	}
	return halted
}

// openTreatmentGroup puts the treatment under test when the traffic rules
// send it its group, with no weight: it is checked and watched as a
// canary with a share of the traffic is, and the first check comes one
// interval later, so that its window holds the group's requests.
func (m *machine) openTreatmentGroup(ex *spec.ExperimentPlan) {
	if !ex.ByRules || exposed(m.st) {
		return
	}
	m.st.Previewing = true
	m.st.Analysis.NextCheckAt = micro(m.now.Add(m.plan.Analysis.Interval))
}

// judgeExperiment looks at one check's counts of the goal, when it has
// them: the split's sample ratio first, then, with enough visitors, the
// goal's conversion rates; then at the maximum duration, counts or not.
func (m *machine) judgeExperiment(ex *spec.ExperimentPlan, x *v1alpha1.ExperimentStatus) {
	control, treatment, ok := m.goalCounts(ex.Metric)
	enough := ok && int64(control.Trials) >= ex.MinSample && int64(treatment.Trials) >= ex.MinSample
	if ok {
		x.Control = variant(m.stableVersion(), control)
		x.Treatment = variant(m.st.Canary.Version, treatment)
		if m.sampleRatioBroken(ex, x, control, treatment) {
			return
		}
	}
	if enough {
		m.lookAtGoal(ex, x, control, treatment)
	}
	if x.Winner != "" || m.now.Before(x.StartedAt.Add(ex.MaxDuration)) {
		return
	}
	switch {
	case !enough:
		m.concludeExperiment(x, v1alpha1.WinnerNone, fmt.Sprintf("no winner within maxDuration %s: fewer than %d visitors in a variant", ex.MaxDuration, ex.MinSample))
	case ex.PromoteIf == v1alpha1.PromoteIfBetter:
		m.concludeExperiment(x, v1alpha1.WinnerNone, fmt.Sprintf("no winner within maxDuration %s: the treatment did not convert significantly better", ex.MaxDuration))
	default:
		m.decideNotWorseAtTheEnd(ex, x, control, treatment)
	}
}

// goalCounts returns the goal's users of each variant measured by this
// check; ok is false when the check has none.
func (m *machine) goalCounts(metric string) (control, treatment stats.Proportion, ok bool) {
	for _, meas := range m.in.Measurements {
		if meas.Metric != metric || meas.Err != nil || meas.StableUsers == nil || meas.CanaryUsers == nil {
			continue
		}
		s, c := meas.StableUsers, meas.CanaryUsers
		return stats.Proportion{Successes: s.Converted, Trials: s.Visitors},
			stats.Proportion{Successes: c.Converted, Trials: c.Visitors}, true
	}
	return control, treatment, false
}

// sampleRatioBroken stops the experiment when its visitors since its
// first check do not fit the planned split: its numbers could not be
// trusted. Counts below the first check's (the daemon restarted, and the
// proxy's counts with it) start the count over.
func (m *machine) sampleRatioBroken(ex *spec.ExperimentPlan, x *v1alpha1.ExperimentStatus, control, treatment stats.Proportion) bool {
	from := x.SampleRatioFrom
	if from == nil || int64(control.Trials) < from.ControlVisitors || int64(treatment.Trials) < from.TreatmentVisitors {
		x.SampleRatioFrom = &v1alpha1.ExperimentLook{ControlVisitors: int64(control.Trials), TreatmentVisitors: int64(treatment.Trials)}
		return false
	}
	counts := []uint64{control.Trials - uint64(from.ControlVisitors), treatment.Trials - uint64(from.TreatmentVisitors)}
	planned := []float64{v1alpha1.FullWeight.Float() - ex.Split.Float(), ex.Split.Float()}
	srm, err := stats.SampleRatioTest(counts, planned, 0)
	if err != nil {
		return false // the split is validated: more than 0, less than 100
	}
	x.SampleRatioPValue = finite(srm.PValue)
	if !srm.Mismatch {
		return false
	}
	m.concludeExperiment(x, v1alpha1.WinnerNone, fmt.Sprintf(
		"sample ratio mismatch: control %d and treatment %d visitors since the first check against a planned split of %g/%g (expected %.0f and %.0f), chi-square %.4g, p = %.3g < %g",
		counts[0], counts[1], planned[0], planned[1], srm.Expected[0], srm.Expected[1], srm.ChiSquare, srm.PValue, stats.DefaultSRMAlpha))
	return true
}

// lookAtGoal records this check's counts and runs the always-valid
// sequential test over every look so far; its verdict, or under notWorse
// the interval at the confidence spent over the looks, may end the
// experiment.
func (m *machine) lookAtGoal(ex *spec.ExperimentPlan, x *v1alpha1.ExperimentStatus, control, treatment stats.Proportion) {
	x.Looks = addLook(x.Looks, v1alpha1.ExperimentLook{
		ControlVisitors: int64(control.Trials), ControlConverted: int64(control.Successes),
		TreatmentVisitors: int64(treatment.Trials), TreatmentConverted: int64(treatment.Successes),
	})
	seq, err := replayLooks(x.Looks, 1-ex.Confidence)
	if err != nil {
		m.st.Message = "experiment: " + err.Error()
		return
	}
	confidence := ex.Confidence
	if ex.PromoteIf == v1alpha1.PromoteIfNotWorse {
		confidence = analysis.SpentConfidence(ex.Confidence, len(x.Looks))
	}
	z := recordTest(x, treatment, control, confidence)
	x.PValue = finite(seq.PValue)
	switch {
	case ex.PromoteIf == v1alpha1.PromoteIfNotWorse && z.Verdict == stats.ProportionNotEnoughData:
		// Too few conversions for the interval: with none at all it is
		// empty, and would promote anything.
	case ex.PromoteIf == v1alpha1.PromoteIfNotWorse && z.ConfInt[0]*100 > -ex.Margin:
		m.concludeExperiment(x, v1alpha1.WinnerTreatment, fmt.Sprintf("the treatment is not worse: the interval's lower bound is above -%g points", ex.Margin))
	case ex.PromoteIf == v1alpha1.PromoteIfNotWorse && z.ConfInt[1]*100 < -ex.Margin:
		m.concludeExperiment(x, v1alpha1.WinnerControl, fmt.Sprintf("the treatment is worse by more than the margin: the interval's upper bound is below -%g points", ex.Margin))
	case ex.PromoteIf == v1alpha1.PromoteIfNotWorse:
	case seq.Verdict == stats.ProportionBetter:
		m.concludeExperiment(x, v1alpha1.WinnerTreatment, "the treatment converts significantly better (always-valid sequential test)")
	case seq.Verdict == stats.ProportionWorse:
		m.concludeExperiment(x, v1alpha1.WinnerControl, "the treatment converts significantly worse (always-valid sequential test)")
	}
}

// decideNotWorseAtTheEnd decides a notWorse experiment that reached its
// maximum duration by the fixed z-test's interval.
func (m *machine) decideNotWorseAtTheEnd(ex *spec.ExperimentPlan, x *v1alpha1.ExperimentStatus, control, treatment stats.Proportion) {
	z := recordTest(x, treatment, control, ex.Confidence)
	x.PValue = finite(z.PValue)
	if z.Verdict == stats.ProportionNotEnoughData {
		m.concludeExperiment(x, v1alpha1.WinnerControl, fmt.Sprintf("at maxDuration %s there are too few conversions for the z-test (%s): the treatment is not shown to be not worse", ex.MaxDuration, z.Reason))
		return
	}
	if z.ConfInt[0]*100 > -ex.Margin {
		m.concludeExperiment(x, v1alpha1.WinnerTreatment, fmt.Sprintf("at maxDuration %s the fixed z-test finds the treatment not worse: the interval's lower bound is above -%g points", ex.MaxDuration, ex.Margin))
		return
	}
	m.concludeExperiment(x, v1alpha1.WinnerControl, fmt.Sprintf("at maxDuration %s the fixed z-test cannot rule out that the treatment is worse by more than %g points", ex.MaxDuration, ex.Margin))
}

// recordTest runs the two-proportion z-test and records its difference
// and interval, in percentage points.
func recordTest(x *v1alpha1.ExperimentStatus, treatment, control stats.Proportion, confidence float64) stats.ProportionResult {
	z, err := stats.ProportionTest(treatment, control, confidence)
	if err != nil {
		return stats.ProportionResult{ConfInt: [2]float64{math.NaN(), math.NaN()}}
	}
	x.Confidence = confidence
	x.Difference = finite(100 * z.Difference)
	x.Interval = nil
	if lo, hi := finite(100*z.ConfInt[0]), finite(100*z.ConfInt[1]); lo != nil && hi != nil {
		x.Interval = []float64{*lo, *hi}
	}
	return z
}

// addLook appends a look, replacing the last one once there are
// MaxExperimentLooks. Counts that went down (the proxy's counts start
// over when the daemon restarts) start the looks over.
func addLook(looks []v1alpha1.ExperimentLook, l v1alpha1.ExperimentLook) []v1alpha1.ExperimentLook {
	if n := len(looks); n > 0 {
		last := looks[n-1]
		if l.ControlVisitors < last.ControlVisitors || l.ControlConverted < last.ControlConverted ||
			l.TreatmentVisitors < last.TreatmentVisitors || l.TreatmentConverted < last.TreatmentConverted {
			looks = nil
		}
	}
	if len(looks) >= v1alpha1.MaxExperimentLooks {
		looks[len(looks)-1] = l
		return looks
	}
	return append(looks, l)
}

// replayLooks runs the sequential test over the looks, oldest first, so
// that its evidence is the same whenever and wherever it is rebuilt.
func replayLooks(looks []v1alpha1.ExperimentLook, alpha float64) (stats.ProportionSequentialStatus, error) {
	t, err := stats.NewProportionSequentialTest(stats.ProportionSequentialConfig{Alpha: alpha})
	if err != nil {
		return stats.ProportionSequentialStatus{}, err
	}
	for _, l := range looks {
		treatment := stats.Proportion{Successes: uint64(l.TreatmentConverted), Trials: uint64(l.TreatmentVisitors)}
		control := stats.Proportion{Successes: uint64(l.ControlConverted), Trials: uint64(l.ControlVisitors)}
		if err := t.Observe(treatment, control); err != nil {
			return stats.ProportionSequentialStatus{}, err
		}
	}
	return t.Status(), nil
}

// concludeExperiment records the winner and says so in the history and
// the notifications; a winner other than the treatment rolls it back.
func (m *machine) concludeExperiment(x *v1alpha1.ExperimentStatus, winner v1alpha1.ExperimentWinner, reason string) {
	x.Winner, x.Reason = winner, reason
	summary := x.Summary() + ": " + reason
	m.event(v1alpha1.EventNormal, "ExperimentConcluded", rollout.Command{}, "Experiment concluded: %s", summary)
	if winner != v1alpha1.WinnerTreatment {
		m.rollBack(v1alpha1.PhaseRolledBack, "experiment: "+summary, m.plan.Experiment.Metric)
	}
}

// stopExperiment records that an experiment ended before a verdict of
// its own — a guardrail or the progress deadline rolled the treatment
// back, or a person promoted or aborted it — so that neither its status
// nor its history shows it still running.
func (m *machine) stopExperiment(how string) {
	x := m.st.Experiment
	if x == nil || x.Winner != "" {
		return
	}
	x.Winner, x.Reason = v1alpha1.WinnerNone, "stopped before a verdict: "+how
	m.event(v1alpha1.EventNormal, "ExperimentConcluded", rollout.Command{}, "Experiment concluded: %s: %s", x.Summary(), x.Reason)
}

// variant is one variant's counts, with its rate in percent.
func variant(version string, p stats.Proportion) v1alpha1.ExperimentVariant {
	return v1alpha1.ExperimentVariant{Version: version, Visitors: int64(p.Trials), Converted: int64(p.Successes), Rate: finite(100 * p.Rate())}
}

// finite returns a pointer to f, or nil when f is NaN or infinite (which
// JSON cannot hold).
func finite(f float64) *float64 {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil
	}
	return &f
}
