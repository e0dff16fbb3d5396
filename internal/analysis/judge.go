// Package analysis judges measurements: it turns the values measured for
// the canary (and the stable, for comparison) into verdicts. It is pure:
// no I/O, no clock.
package analysis

import (
	"fmt"
	"math"
	"strconv"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/analysis/condition"
	"github.com/pipit-dev/pipit/internal/rollout"
	"github.com/pipit-dev/pipit/internal/spec"
)

// Evaluate gives one metric's verdict on one measurement. Measurement
// errors and missing data are verdicts of their own; what they mean for
// the rollout (limits, the no-data policy) is the engine's call.
func Evaluate(m v1alpha1.MetricSpec, meas rollout.Measurement, confidence float64) v1alpha1.MetricResult {
	r := v1alpha1.MetricResult{Name: m.Name, Canary: meas.Canary, Stable: meas.Stable, DryRun: m.DryRun}
	switch {
	case meas.Err != nil:
		r.Verdict, r.Message = v1alpha1.VerdictError, fmt.Sprintf("%s: %v", m.Name, meas.Err)
	case m.Compare != nil:
		r.Verdict, r.Message = compare(m, meas, confidence)
	case meas.Canary == nil:
		r.Verdict, r.Message = v1alpha1.VerdictNoData, m.Name+": no data for the canary in this window"
	default:
		r.Verdict, r.Message = judgeValue(m, *meas.Canary, meas.Stable)
	}
	return r
}

// judgeValue applies the threshold range, then the conditions.
func judgeValue(m v1alpha1.MetricSpec, v float64, stable *float64) (v1alpha1.Verdict, string) {
	tr := m.ThresholdRange
	show := valueWriter(m)
	if tr != nil && tr.Min != nil && v < *tr.Min {
		return v1alpha1.VerdictFailed, fmt.Sprintf("%s %s < min %s", m.Name, show(v), show(*tr.Min))
	}
	if tr != nil && tr.Max != nil && v > *tr.Max {
		return v1alpha1.VerdictFailed, fmt.Sprintf("%s %s > max %s", m.Name, show(v), show(*tr.Max))
	}
	if m.SuccessCondition == "" && m.FailureCondition == "" {
		return v1alpha1.VerdictSuccessful, fmt.Sprintf("%s %s within %s", m.Name, show(v), rangeString(tr, show))
	}
	return judgeConditions(m, v, stable)
}

// judgeConditions follows Argo's rules: a failure condition that holds
// fails; a success condition that does not hold fails when it is the only
// condition; with both set and neither holding, the result is inconclusive.
func judgeConditions(m v1alpha1.MetricSpec, v float64, stable *float64) (v1alpha1.Verdict, string) {
	value := valueWriter(m)
	show := m.Name + " " + value(v)
	if stable != nil {
		show += " (stable " + value(*stable) + ")"
	}
	if m.FailureCondition != "" {
		failed, err := condition.Eval(m.FailureCondition, v, stable)
		if err != nil {
			return v1alpha1.VerdictError, fmt.Sprintf("%s: failureCondition: %v", m.Name, err)
		}
		if failed {
			return v1alpha1.VerdictFailed, fmt.Sprintf("%s: failureCondition %q holds", show, m.FailureCondition)
		}
	}
	if m.SuccessCondition == "" {
		return v1alpha1.VerdictSuccessful, fmt.Sprintf("%s: failureCondition %q does not hold", show, m.FailureCondition)
	}
	ok, err := condition.Eval(m.SuccessCondition, v, stable)
	switch {
	case err != nil:
		return v1alpha1.VerdictError, fmt.Sprintf("%s: successCondition: %v", m.Name, err)
	case ok:
		return v1alpha1.VerdictSuccessful, fmt.Sprintf("%s: successCondition %q holds", show, m.SuccessCondition)
	case m.FailureCondition != "":
		return v1alpha1.VerdictInconclusive, fmt.Sprintf("%s: neither condition holds", show)
	}
	return v1alpha1.VerdictFailed, fmt.Sprintf("%s: successCondition %q does not hold", show, m.SuccessCondition)
}

func rangeString(tr *v1alpha1.ThresholdRange, show func(float64) string) string {
	switch {
	case tr == nil || (tr.Min == nil && tr.Max == nil):
		return "(no bounds)"
	case tr.Min != nil && tr.Max != nil:
		return fmt.Sprintf("[%s, %s]", show(*tr.Min), show(*tr.Max))
	case tr.Min != nil:
		return "min " + show(*tr.Min)
	default:
		return "max " + show(*tr.Max)
	}
}

// valueWriter writes m's values for people, with its unit: "7.49ms".
func valueWriter(m v1alpha1.MetricSpec) func(float64) string {
	unit := spec.MetricUnit(m)
	return func(v float64) string { return spec.WithUnit(num(v), unit) }
}

// num prints a value rounded to two decimals, without trailing zeros:
// enough for rates in percent and latencies in milliseconds.
func num(v float64) string {
	if math.Abs(v) >= 1e9 {
		return strconv.FormatFloat(v, 'g', 4, 64)
	}
	return strconv.FormatFloat(math.Round(v*100)/100, 'f', -1, 64)
}
