// Package analysis judges measurements: it turns the values measured for
// the canary (and the stable, for comparison) into verdicts, and a check's
// verdicts into one outcome. It is pure: no I/O, no clock.
package analysis

import (
	"fmt"
	"math"
	"strconv"

	"github.com/pipit-dev/pipit/api/v1alpha1"
)

// Measurement is one metric measured over one window for both versions.
// A nil value means there was nothing to measure (no requests), which is
// not the same as zero.
type Measurement struct {
	Metric string
	Canary *float64
	Stable *float64
	// Err is set when measuring failed; the values are then ignored.
	Err error
}

// Outcome is the result of one check over all its metrics.
type Outcome int

const (
	// Passed: every metric was within its bounds.
	Passed Outcome = iota
	// Failed: at least one metric was out of its bounds.
	Failed
	// Inconclusive: nothing failed, but at least one metric had no data or
	// could not be measured, so the check neither passes nor fails.
	Inconclusive
)

func (o Outcome) String() string {
	switch o {
	case Passed:
		return "passed"
	case Failed:
		return "failed"
	case Inconclusive:
		return "inconclusive"
	}
	return fmt.Sprintf("Outcome(%d)", int(o))
}

// Judge gives one metric's verdict on one measurement.
func Judge(m v1alpha1.MetricSpec, meas Measurement) v1alpha1.MetricResult {
	r := v1alpha1.MetricResult{Name: m.Name, Canary: meas.Canary, Stable: meas.Stable}
	switch {
	case meas.Err != nil:
		r.Verdict = v1alpha1.VerdictError
		r.Message = fmt.Sprintf("%s: %v", m.Name, meas.Err)
	case meas.Canary == nil:
		r.Verdict = v1alpha1.VerdictNoData
		r.Message = m.Name + ": no data for the canary in this window"
	default:
		r.Verdict, r.Message = judgeRange(m.Name, *meas.Canary, m.ThresholdRange)
	}
	return r
}

func judgeRange(name string, v float64, tr *v1alpha1.ThresholdRange) (v1alpha1.Verdict, string) {
	if tr != nil && tr.Min != nil && v < *tr.Min {
		return v1alpha1.VerdictFailed, fmt.Sprintf("%s %s < min %s", name, num(v), num(*tr.Min))
	}
	if tr != nil && tr.Max != nil && v > *tr.Max {
		return v1alpha1.VerdictFailed, fmt.Sprintf("%s %s > max %s", name, num(v), num(*tr.Max))
	}
	return v1alpha1.VerdictSuccessful, fmt.Sprintf("%s %s within %s", name, num(v), rangeString(tr))
}

// Check judges every metric and combines the verdicts. Metrics without a
// measurement count as no data. A check with no metrics passes: the
// rollout is then gated by time and health alone.
func Check(metrics []v1alpha1.MetricSpec, measured []Measurement) ([]v1alpha1.MetricResult, Outcome) {
	byName := make(map[string]Measurement, len(measured))
	for _, m := range measured {
		byName[m.Metric] = m
	}
	results := make([]v1alpha1.MetricResult, 0, len(metrics))
	outcome := Passed
	for _, m := range metrics {
		meas, ok := byName[m.Name]
		if !ok {
			meas = Measurement{Metric: m.Name}
		}
		r := Judge(m, meas)
		results = append(results, r)
		switch {
		case r.Verdict == v1alpha1.VerdictFailed:
			outcome = Failed
		case r.Verdict != v1alpha1.VerdictSuccessful && outcome == Passed:
			outcome = Inconclusive
		}
	}
	return results, outcome
}

// FirstFailure returns the first failed result, which names the metric a
// rollback is blamed on.
func FirstFailure(results []v1alpha1.MetricResult) (v1alpha1.MetricResult, bool) {
	for _, r := range results {
		if r.Verdict == v1alpha1.VerdictFailed {
			return r, true
		}
	}
	return v1alpha1.MetricResult{}, false
}

func rangeString(tr *v1alpha1.ThresholdRange) string {
	switch {
	case tr == nil || (tr.Min == nil && tr.Max == nil):
		return "(no bounds)"
	case tr.Min != nil && tr.Max != nil:
		return fmt.Sprintf("[%s, %s]", num(*tr.Min), num(*tr.Max))
	case tr.Min != nil:
		return "min " + num(*tr.Min)
	default:
		return "max " + num(*tr.Max)
	}
}

// num prints a value rounded to two decimals, without trailing zeros:
// enough for rates in percent and latencies in milliseconds.
func num(v float64) string {
	if math.Abs(v) >= 1e9 {
		return strconv.FormatFloat(v, 'g', 4, 64)
	}
	return strconv.FormatFloat(math.Round(v*100)/100, 'f', -1, 64)
}
