package cli

import (
	"bytes"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/pipit-dev/pipit/internal/controlapi"
)

func init() { register(newSamplesCmd) }

func newSamplesCmd(g *globals) *cobra.Command {
	var (
		metric, since string
		output        *outputFormat
		flags         *backendFlags
	)
	cmd := &cobra.Command{
		Use:   "samples NAME [--metric METRIC] [--since TIME|AGE]",
		Short: "Show the results of a rollout's analysis checks, oldest first",
		Long: `samples prints what each analysis check of a rollout measured: the local time of the
check, the metric, the canary's and the stable's values, and the verdict. The
standalone daemon keeps every check's results, within its retention (pipit up
--retention, --retention-keep); in Kubernetes (--kube) the controller keeps the
last 60 checks' values and verdicts, without their messages, in the Rollout's
status.recentChecks.

--metric keeps one metric; --since keeps the checks made at or after a time, given
in RFC 3339 (2026-07-01T12:00:00Z) or as an age (90m, 36h, 7d ago). -o json and
-o yaml print them as the control API returns them.`,
		Example: `  pipit samples web
  pipit samples web --metric request-success-rate --since 2h
  pipit samples web --since 2026-07-01T12:00:00Z -o json | jq '.[] | select(.verdict == "Failed")'`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			from, err := parseSince(since, g.clock.Now())
			if err != nil {
				return err
			}
			b, err := flags.backend()
			if err != nil {
				return err
			}
			reader, ok := b.(controlapi.SampleReader)
			if !ok {
				return BadInputf("this backend keeps no analysis samples")
			}
			samples, err := reader.Samples(cmd.Context(), args[0], metric, from)
			if err != nil {
				return err
			}
			var units map[string]string
			if !output.isDocument() {
				// The rollout's metrics say the unit of each value.
				v, err := b.Rollout(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				units = metricUnits(v.Metrics)
			}
			return output.print(cmd.OutOrStdout(), samples, func() string { return samplesTable(samples, units, time.Local) })
		},
	}
	flags = addBackendFlags(cmd, g)
	cmd.Flags().StringVar(&metric, "metric", "", "show only this metric's results (default: every metric)")
	cmd.Flags().StringVar(&since, "since", "", "show only the checks made at or after this time: RFC 3339, or an age such as 2h or 7d (default: all kept)")
	output = addOutputFlag(cmd, "table")
	return cmd
}

// parseSince reads --since: an RFC 3339 time, or an age counted back from
// now. Empty is the zero time: every sample kept.
func parseSince(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	var age ageValue
	if err := age.Set(s); err != nil {
		return time.Time{}, BadInputf("--since %q: want an RFC 3339 time such as 2026-07-01T12:00:00Z, or an age such as 2h or 7d", s)
	}
	return now.Add(-time.Duration(age)), nil
}

// samplesTable writes one line per sample, in loc's time, each value in
// its metric's unit; a metric with no data shows "-", and a dry run's
// verdict says so.
func samplesTable(samples []controlapi.Sample, units map[string]string, loc *time.Location) string {
	if len(samples) == 0 {
		return "No samples.\n"
	}
	var b bytes.Buffer
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tMETRIC\tCANARY\tSTABLE\tVERDICT\tMESSAGE")
	for _, s := range samples {
		verdict := string(s.Verdict)
		if s.DryRun {
			verdict += " (dry run)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", s.At.In(loc).Format(time.DateTime), s.Name,
			valueIn(s.Canary, units[s.Name]), valueIn(s.Stable, units[s.Name]), verdict, s.Message)
	}
	tw.Flush()
	return b.String()
}
