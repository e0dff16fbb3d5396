package cli

import (
	"bytes"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/controlapi"
)

func init() { register(newStatusCmd) }

func newStatusCmd(g *globals) *cobra.Command {
	var (
		output *outputFormat
		flags  *backendFlags
	)
	cmd := &cobra.Command{
		Use:   "status [NAME]",
		Short: "Show the rollouts, or one rollout in detail",
		Long: `status lists every rollout the daemon runs: its phase, the step it is at, the share
of traffic on the canary, the stable and canary versions, how the last check went
and why the rollout is where it is.

Given a NAME it shows that rollout in detail: every step, the last analysis (each
metric's stable and canary value against its bounds, and its verdict), what the
proxy measures of both versions right now, and why it rolled back, if it did.

-o json and -o yaml print the rollouts as the control API returns them.`,
		Example: `  pipit status
  pipit status web
  pipit status web -o yaml
  pipit status --state-dir /var/lib/pipit -o json | jq '.[].status.phase'`,
		Args: func(cmd *cobra.Command, args []string) error { return BadInput(cobra.MaximumNArgs(1)(cmd, args)) },
		RunE: func(cmd *cobra.Command, args []string) error {
			b, err := flags.backend()
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if len(args) == 0 {
				views, err := b.Rollouts(cmd.Context())
				if err != nil {
					return err
				}
				return output.print(out, views, func() string { return statusTable(views, g.clock.Now()) })
			}
			v, err := b.Rollout(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return output.print(out, v, func() string { return statusDetail(v, g.clock.Now()) })
		},
	}
	flags = addBackendFlags(cmd, g)
	output = addOutputFlag(cmd, "table")
	return cmd
}

// statusTable is the one-line-per-rollout view.
func statusTable(views []controlapi.RolloutView, now time.Time) string {
	if len(views) == 0 {
		return "No rollouts.\n"
	}
	var b bytes.Buffer
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tPHASE\tSTEP\tWEIGHT\tSTABLE\tCANARY\tLAST CHECK\tMESSAGE")
	for _, v := range views {
		st := v.Status
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", v.Name, phase(st.Phase), stepLabel(v), st.CanaryWeight,
			version(st.Stable), version(st.Canary), lastCheck(st.Analysis, now), orDash(shorten(st.Message, 60)))
	}
	tw.Flush()
	return b.String()
}

// phase names a phase; a rollout that never ran has none yet.
func phase(p v1alpha1.Phase) v1alpha1.Phase {
	if p == "" {
		return v1alpha1.PhaseIdle
	}
	return p
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// shorten cuts s to at most n runes, marking the cut.
func shorten(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return strings.TrimRight(string(r[:n-1]), " ") + "…"
}

// statusDetail is the whole story of one rollout, with times shown in
// now's location.
func statusDetail(v controlapi.RolloutView, now time.Time) string {
	var b bytes.Buffer
	st := v.Status
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	field := func(name, format string, args ...any) { fmt.Fprintf(tw, name+":\t"+format+"\n", args...) }
	field("Name", "%s", v.Name)
	field("Phase", "%s", phase(st.Phase))
	if st.Message != "" {
		field("Message", "%s", st.Message)
	}
	if st.Rollback != nil {
		field("Rollback", "%s", rollbackLine(*st.Rollback, now))
	}
	if g := st.Gate; g != nil {
		field("Waiting for", "%s decision since %s: %s (pipit promote %s, or pipit abort %s)",
			g.Kind, ago(now, g.Since.Time), g.Reason, v.Name, v.Name)
	}
	if v.Decision != "" {
		field("Decision", "%s", v.Decision)
	}
	switch {
	case v.Flag != "":
		field("Flag", "%s, over OFREP on %s", v.Flag, v.Listen)
	case v.Listen != "":
		field("Proxy", "%s", v.Listen)
	}
	if v.Preview != "" {
		field("Preview", "%s", v.Preview)
	}
	field("Stable", "%s", versionWithURL(st.Stable))
	field("Canary", "%s", versionWithURL(st.Canary))
	switch {
	case st.Previewing && st.Experiment != nil:
		field("Weight", "%s (the treatment gets the requests its traffic rules send it)", st.CanaryWeight)
	case st.Previewing:
		field("Weight", "%s (previewed with no user traffic; the promotion switches all of it)", st.CanaryWeight)
	default:
		field("Weight", "%s", st.CanaryWeight)
	}
	field("Step", "%s", stepLabel(v))
	if st.StartedAt != nil {
		field("Started", "%s (%s)", st.StartedAt.In(now.Location()).Format(time.DateTime), ago(now, st.StartedAt.Time))
	}
	field("Checks", "%s", checksLine(v, now))
	if w := st.Watch; w != nil && w.Until != nil {
		field("Watch", "%s", watchLine(*w, now))
	}
	if x := st.Experiment; x != nil {
		field("Experiment", "%s", x.Summary())
	}
	tw.Flush()

	if len(v.Steps) > 0 {
		b.WriteString("\nSteps:\n")
		for i, s := range v.Steps {
			mark := " "
			if i == int(st.CurrentStep) && stepLabel(v) != "-" {
				mark = ">"
			}
			fmt.Fprintf(&b, "  %s %2d  %s\n", mark, i+1, s)
		}
	}
	if t := targetsTable(st.Targets, "  "); t != "" {
		b.WriteString("\nDeployments:\n" + t)
	}
	if a := st.Analysis; len(a.LastResults) > 0 && a.LastCheckAt != nil {
		fmt.Fprintf(&b, "\nLast check (%s, %s):\n", ago(now, a.LastCheckAt.Time), checkOutcome(a.LastResults))
		b.WriteString(resultsTable(a.LastResults, v.Metrics))
	}
	if v.Live != nil {
		fmt.Fprintf(&b, "\nLive metrics (since %s):\n", ago(now, v.Live.Since))
	} else {
		b.WriteString("\nLive metrics:\n")
	}
	b.WriteString(liveTable(v.Live, "  "))
	return b.String()
}

func versionWithURL(r *v1alpha1.VersionRef) string {
	switch {
	case r != nil && len(r.URLs) > 0:
		return r.Version + "  " + strings.Join(r.URLs, " ")
	case r == nil || r.URL == "" || r.URL == r.Version:
		return version(r)
	}
	return r.Version + "  " + r.URL
}

func rollbackLine(r v1alpha1.Rollback, now time.Time) string {
	s := r.Reason
	if r.Metric != "" {
		s += " (metric " + r.Metric + ")"
	}
	return s + ", " + ago(now, r.At.Time)
}

// checksLine sums up the analysis: its rhythm, its tally and what is next.
func checksLine(v controlapi.RolloutView, now time.Time) string {
	a := v.Status.Analysis
	var parts []string
	if d := time.Duration(v.AnalysisInterval); d > 0 {
		parts = append(parts, "every "+d.String())
	}
	if rps := v.ExpectedRequestsPerSecond; rps > 0 {
		parts = append(parts, fmt.Sprintf("expecting %g requests/s", rps))
	}
	parts = append(parts, fmt.Sprintf("%d passed, %d failed", a.PassedChecks, a.FailedChecks))
	if a.NextCheckAt != nil && a.NextCheckAt.After(now) {
		parts = append(parts, "next in "+a.NextCheckAt.Sub(now).Round(time.Second).String())
	}
	return strings.Join(parts, "; ")
}

// watchLine sums up the watch after the last promotion: how long it still
// runs, or how it ended.
func watchLine(w v1alpha1.PostPromotionWatch, now time.Time) string {
	checks := fmt.Sprintf("%d checks of the new stable", w.Checks)
	switch w.Outcome {
	case "":
		return fmt.Sprintf("after the promotion, until %s (%s left); %s, none failed",
			w.Until.In(now.Location()).Format(time.TimeOnly), w.Until.Sub(now).Round(time.Second), checks)
	case v1alpha1.WatchFailed:
		for _, r := range w.LastResults {
			if r.Verdict == v1alpha1.VerdictFailed && !r.DryRun {
				return fmt.Sprintf("failed after %s: %s", checks, r.Message)
			}
		}
	}
	return fmt.Sprintf("%s after %s", strings.ToLower(string(w.Outcome)), checks)
}

// resultsTable compares the versions metric by metric at the last check,
// each value with its metric's unit.
func resultsTable(results []v1alpha1.MetricResult, specs []v1alpha1.MetricSpec) string {
	units := metricUnits(specs)
	bounds := map[string]string{}
	for _, m := range specs {
		bounds[m.Name] = rangeLabel(m.ThresholdRange, units[m.Name])
	}
	var b bytes.Buffer
	tw := tabwriter.NewWriter(&b, 0, 0, 3, ' ', 0)
	fmt.Fprintln(tw, "  METRIC\tSTABLE\tCANARY\tRANGE\tVERDICT")
	for _, r := range results {
		verdict := string(r.Verdict)
		if r.Verdict != v1alpha1.VerdictSuccessful && r.Message != "" {
			verdict += ": " + r.Message
		}
		rng := bounds[r.Name]
		if rng == "" {
			rng = "-"
		}
		u := units[r.Name]
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", r.Name, valueIn(r.Stable, u), valueIn(r.Canary, u), rng, verdict)
	}
	tw.Flush()
	return b.String()
}

// rangeLabel writes a threshold range in unit: "min 99%", "max 500ms",
// "1 to 5".
func rangeLabel(r *v1alpha1.ThresholdRange, unit string) string {
	switch {
	case r == nil || (r.Min == nil && r.Max == nil):
		return ""
	case r.Min != nil && r.Max != nil:
		return valueIn(r.Min, unit) + " to " + valueIn(r.Max, unit)
	case r.Min != nil:
		return "min " + valueIn(r.Min, unit)
	}
	return "max " + valueIn(r.Max, unit)
}
