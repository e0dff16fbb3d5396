package cli

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/controlapi"
	"github.com/pipit-dev/pipit/internal/spec"
)

// This file holds the pieces of text that several verbs show the same
// way. Each is a pure function of its arguments, so tests can pin them.

// stepLabel says where a rollout is in its plan, counting steps from 1 as
// people do (the status counts from 0): "3/6 pause 10m0s", or "6/6 done"
// once past the last step, never "7/6"; "-" when nothing runs.
func stepLabel(v controlapi.RolloutView) string {
	n, i := len(v.Steps), int(v.Status.CurrentStep)
	switch {
	case n == 0 || v.Status.Phase == "" || v.Status.Phase == v1alpha1.PhaseIdle:
		return "-"
	case i >= n:
		return fmt.Sprintf("%d/%d done", n, n)
	}
	return fmt.Sprintf("%d/%d %s", i+1, n, v.Steps[i])
}

// version names a version, or "-" for none.
func version(r *v1alpha1.VersionRef) string {
	if r == nil || r.Version == "" {
		return "-"
	}
	return r.Version
}

// ago says how long before now t was, coarsely: "45s ago", "2m ago".
func ago(now, t time.Time) string {
	d := now.Sub(t)
	switch {
	case d < time.Second:
		return "just now"
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d/time.Second))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d/time.Minute))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d/time.Hour))
	}
	return fmt.Sprintf("%dd ago", int(d/(24*time.Hour)))
}

// checkOutcome sums up one check: failed if any metric failed, error if
// any measurement failed, no data if nothing was measured, else passed.
func checkOutcome(results []v1alpha1.MetricResult) string {
	outcome := "no data"
	for _, r := range results {
		switch r.Verdict {
		case v1alpha1.VerdictFailed:
			return "failed"
		case v1alpha1.VerdictError:
			outcome = "error"
		case v1alpha1.VerdictSuccessful:
			if outcome == "no data" {
				outcome = "passed"
			}
		}
	}
	return outcome
}

// lastCheck is the LAST CHECK column: "passed 2m ago", or "-".
func lastCheck(a v1alpha1.AnalysisStatus, now time.Time) string {
	if a.LastCheckAt == nil {
		return "-"
	}
	return checkOutcome(a.LastResults) + " " + ago(now, a.LastCheckAt.Time)
}

// progressBar draws a weight as "[#####...............] 25%", one mark per
// 100/width percent, rounded down so that a bar is never fuller than the
// weight.
func progressBar(w v1alpha1.Percent, width int) string {
	w = min(max(w, 0), v1alpha1.FullWeight)
	filled := int(int64(w) * int64(width) / int64(v1alpha1.FullWeight))
	return "[" + strings.Repeat("#", filled) + strings.Repeat(".", width-filled) + "] " + w.String()
}

// number writes v with at most decimals places and no trailing zeros.
func number(v float64, decimals int) string {
	s := strconv.FormatFloat(v, 'f', decimals, 64)
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	return s
}

// valueIn writes a measured value followed by its unit ("52.5ms"; the
// number alone for no unit), or "-" when there was none.
func valueIn(v *float64, unit string) string {
	if v == nil {
		return "-"
	}
	return spec.WithUnit(number(*v, 3), unit)
}

// metricUnits maps each metric's name to its unit, "" when unknown.
func metricUnits(specs []v1alpha1.MetricSpec) map[string]string {
	units := make(map[string]string, len(specs))
	for _, m := range specs {
		units[m.Name] = spec.MetricUnit(m)
	}
	return units
}

// percentValue writes a rate in percent: "99.95%".
func percentValue(v *float64) string {
	if v == nil {
		return "-"
	}
	return number(*v, 2) + "%"
}

// millis writes a latency in milliseconds with about three significant
// digits: "0.35ms", "45.2ms", "1.25s".
func millis(v *float64) string {
	switch {
	case v == nil:
		return "-"
	case *v >= 1000:
		return number(*v/1000, 2) + "s"
	case *v >= 100:
		return number(*v, 0) + "ms"
	case *v >= 10:
		return number(*v, 1) + "ms"
	}
	return number(*v, 2) + "ms"
}

// health says whether a version passes its health checks.
func health(m controlapi.VersionMetrics) string {
	switch {
	case m.Healthy == nil:
		return "-"
	case *m.Healthy:
		return "healthy"
	case m.HealthReason != "":
		return "unhealthy: " + m.HealthReason
	}
	return "unhealthy"
}

// liveTable puts what the proxy measures of each version side by side.
func liveTable(l *controlapi.LiveMetrics, indent string) string {
	if l == nil {
		return indent + "no measurements yet\n"
	}
	versions := []controlapi.VersionMetrics{l.Stable}
	header := indent + "\tSTABLE " + l.Stable.Version
	if l.Canary != nil {
		versions = append(versions, *l.Canary)
		header += "\tCANARY " + l.Canary.Version
	}
	rows := []struct {
		name string
		cell func(controlapi.VersionMetrics) string
	}{
		{"Requests", func(m controlapi.VersionMetrics) string { return strconv.FormatUint(m.Requests, 10) }},
		{"Success rate", func(m controlapi.VersionMetrics) string { return percentValue(m.SuccessRate) }},
		{"Latency p50", func(m controlapi.VersionMetrics) string { return millis(m.LatencyP50) }},
		{"Latency p99", func(m controlapi.VersionMetrics) string { return millis(m.LatencyP99) }},
		{"Health", health},
	}
	var b bytes.Buffer
	tw := tabwriter.NewWriter(&b, 0, 0, 3, ' ', 0)
	fmt.Fprintln(tw, header)
	for _, r := range rows {
		fmt.Fprint(tw, indent, r.name)
		for _, m := range versions {
			fmt.Fprint(tw, "\t", r.cell(m))
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
	return b.String()
}
