package engine

import (
	"fmt"
	"strings"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/analysis"
	"github.com/pipit-dev/pipit/internal/analysis/stats"
	"github.com/pipit-dev/pipit/internal/rollout"
	"github.com/pipit-dev/pipit/internal/spec"
)

// runDueCheck judges the measurements when a check is due, updates each
// metric's counters and holds them against the metric's limits. It halts
// the rollout when a limit was exceeded (an anomaly) or the analysis is
// inconclusive for good (a person decides).
func (m *machine) runDueCheck() verdict {
	if m.in.Measurements == nil || !CheckDue(m.st, m.now) {
		return proceed
	}
	a := &m.st.Analysis
	a.LastCheckAt = micro(m.now)
	a.NextCheckAt = micro(m.now.Add(m.plan.Analysis.Interval))
	m.checked = true
	metrics, results := m.evaluate()
	a.LastResults = results

	c := checkTally{passed: true}
	for i, r := range results {
		m.count(metrics[i], r, &c)
	}
	if c.deciding > 0 && !c.anyData {
		c.passed = false // never advance on missing data
	}
	return m.conclude(c, results)
}

// checkTally gathers what one check found across its metrics.
type checkTally struct {
	passed   bool
	anyData  bool
	anyFail  bool
	deciding int
	// fail is the first limit exceeded, with the metric to blame.
	fail, failMetric string
	// inconclusive is set when a metric passed its inconclusive limit.
	inconclusive string
}

// evaluate judges every metric, and scores the compared ones together.
func (m *machine) evaluate() ([]spec.PlanMetric, []v1alpha1.MetricResult) {
	byName := make(map[string]rollout.Measurement, len(m.in.Measurements))
	for _, meas := range m.in.Measurements {
		byName[meas.Metric] = meas
	}
	ap := m.plan.Analysis
	metrics := make([]spec.PlanMetric, 0, len(ap.Metrics)+1)
	results := make([]v1alpha1.MetricResult, 0, len(ap.Metrics)+1)
	var classified []stats.MetricResult
	for _, pm := range ap.Metrics {
		if pm.ExperimentGoal {
			continue // the experiment judges it, against no limit
		}
		metrics = append(metrics, pm)
		meas, ok := byName[pm.Name]
		if !ok {
			meas = rollout.Measurement{Metric: pm.Name}
		}
		if pm.Compare != nil {
			confidence := ap.Judge.Confidence
			if pm.Provider == nil {
				// Builtin samples grow with the rollout: the same canary
				// is tested again at each check, so the error is spent
				// over the checks that were scored.
				confidence = analysis.SpentConfidence(confidence, m.scoredChecks()+1)
			}
			r, c := analysis.Compare(pm.MetricSpec, meas, confidence)
			results = append(results, r)
			classified = append(classified, c)
			continue
		}
		results = append(results, analysis.Evaluate(pm.MetricSpec, meas, ap.Judge.Confidence))
	}
	for i := range results {
		// The status keeps its own copy of the measured values, not the
		// caller's.
		r := results[i]
		r.DeepCopyInto(&results[i])
	}
	if len(classified) > 0 {
		results = append(results, analysis.Score(classified, ap.Judge.PassScore, ap.Judge.MarginalScore, ap.Judge.GroupWeights))
		metrics = append(metrics, spec.PlanMetric{
			MetricSpec: v1alpha1.MetricSpec{Name: analysis.ScoreMetric}, FailureLimit: ap.FailureLimit,
			ConsecutiveErrorLimit: spec.DefaultConsecutiveErrors, NoData: v1alpha1.NoDataHold, NoDataTimeout: spec.DefaultNoDataTimeout,
		})
	}
	return metrics, results
}

// scoredChecks is how many checks of this canary the compared metrics'
// score judged (passed, failed or inconclusive; not those without data).
func (m *machine) scoredChecks() int {
	for _, ms := range m.st.Analysis.Metrics {
		if ms.Name == analysis.ScoreMetric {
			return int(ms.Successful + ms.Failed + ms.Inconclusive)
		}
	}
	return 0
}

// count updates one metric's counters from its result and checks its
// limits.
func (m *machine) count(pm spec.PlanMetric, r v1alpha1.MetricResult, c *checkTally) {
	ms := m.metricStatus(pm.Name)
	failedBefore := ms.Failed
	switch r.Verdict {
	case v1alpha1.VerdictSuccessful:
		ms.Successful++
	case v1alpha1.VerdictFailed:
		ms.Failed++
	case v1alpha1.VerdictInconclusive:
		ms.Inconclusive++
	case v1alpha1.VerdictError:
		ms.Errors++
		ms.ConsecutiveErrors++
	}
	if r.Verdict != v1alpha1.VerdictError {
		ms.ConsecutiveErrors = 0
	}
	if r.Verdict != v1alpha1.VerdictNoData {
		ms.NoDataSince = nil
	}
	if r.DryRun || pm.Compare != nil {
		// Measured and reported, never deciding: a dry run; or a compared
		// metric, which decides through the score, not on its own.
		return
	}
	c.deciding++
	switch r.Verdict {
	case v1alpha1.VerdictSuccessful:
		c.anyData = true
	case v1alpha1.VerdictFailed:
		c.anyData, c.anyFail, c.passed = true, true, false
	case v1alpha1.VerdictInconclusive:
		c.anyData, c.passed = true, false
	case v1alpha1.VerdictError:
		c.passed, c.anyFail = false, true
	case v1alpha1.VerdictNoData:
		m.applyNoDataPolicy(pm, ms, c)
	}
	blame := func(reason string) {
		if c.fail == "" {
			c.fail, c.failMetric = reason, pm.Name
		}
	}
	switch {
	case ms.Failed > failedBefore && int(ms.Failed) > pm.FailureLimit:
		blame(fmt.Sprintf("%s (failed %d times, failureLimit %d)", r.Message, ms.Failed, pm.FailureLimit))
	case r.Verdict == v1alpha1.VerdictError && int(ms.ConsecutiveErrors) > pm.ConsecutiveErrorLimit:
		blame(fmt.Sprintf("%s (%d errors in a row, consecutiveErrorLimit %d)", r.Message, ms.ConsecutiveErrors, pm.ConsecutiveErrorLimit))
	case r.Verdict == v1alpha1.VerdictInconclusive && pm.InconclusiveLimit > 0 && int(ms.Inconclusive) > pm.InconclusiveLimit && c.inconclusive == "":
		c.inconclusive = fmt.Sprintf("%s (inconclusive %d times, inconclusiveLimit %d)", r.Message, ms.Inconclusive, pm.InconclusiveLimit)
	}
}

// applyNoDataPolicy applies the metric's no-data policy. Missing data never passes a
// check, whatever the policy; ignore only keeps it from blocking one.
func (m *machine) applyNoDataPolicy(pm spec.PlanMetric, ms *v1alpha1.MetricStatus, c *checkTally) {
	switch pm.NoData {
	case v1alpha1.NoDataIgnore:
		// It neither blocks nor passes the check: the check passes on the
		// other metrics' data, and not at all when none had any.
	case v1alpha1.NoDataFail:
		ms.Failed++
		c.passed, c.anyFail = false, true
	default: // hold
		c.passed = false
		if ms.NoDataSince == nil {
			ms.NoDataSince = micro(m.now)
		}
		if waited := m.now.Sub(ms.NoDataSince.Time); waited >= pm.NoDataTimeout && c.fail == "" {
			c.fail, c.failMetric = fmt.Sprintf("%s: no data for %s (noDataTimeout %s)", pm.Name, waited.Round(1e9), pm.NoDataTimeout), pm.Name
		}
	}
}

// conclude records the check's outcome and reacts to an exceeded limit,
// which halts the rollout.
func (m *machine) conclude(c checkTally, results []v1alpha1.MetricResult) verdict {
	a := &m.st.Analysis
	switch {
	case c.passed:
		a.PassedChecks++
		a.StepPassedChecks++
		a.WeightPassedChecks++
		m.event(v1alpha1.EventNormal, "CheckPassed", rollout.Command{}, "Metrics healthy at %s: %s", m.st.CanaryWeight, summary(results))
	case c.anyFail:
		a.FailedChecks++
		m.event(v1alpha1.EventWarning, "CheckFailed", rollout.Command{}, "Check failed at %s: %s", m.st.CanaryWeight, summary(results))
	default:
		m.event(v1alpha1.EventNormal, "CheckInconclusive", rollout.Command{}, "Check inconclusive at %s: %s", m.st.CanaryWeight, summary(results))
	}
	switch {
	case c.fail != "":
		m.reactToAnomaly(c.fail, c.failMetric)
		return halted
	case c.inconclusive != "":
		if m.st.Gate == nil {
			m.awaitDecision(v1alpha1.GateAnomaly, "analysis inconclusive, manual review required: "+c.inconclusive)
		}
		return halted
	}
	return proceed
}

// metricStatus is the counters of the named metric, added on first use.
func (m *machine) metricStatus(name string) *v1alpha1.MetricStatus {
	a := &m.st.Analysis
	for i := range a.Metrics {
		if a.Metrics[i].Name == name {
			return &a.Metrics[i]
		}
	}
	a.Metrics = append(a.Metrics, v1alpha1.MetricStatus{Name: name})
	return &a.Metrics[len(a.Metrics)-1]
}

// summary joins the messages of a check's results.
func summary(results []v1alpha1.MetricResult) string {
	if len(results) == 0 {
		return "no metrics configured"
	}
	msgs := make([]string, len(results))
	for i, r := range results {
		msgs[i] = r.Message
		if r.DryRun {
			msgs[i] += " [dry run]"
		}
	}
	return strings.Join(msgs, "; ")
}
