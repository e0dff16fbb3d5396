package cli

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/pipit-dev/pipit/api/v1alpha1"
)

func init() { register(newHistoryCmd) }

func newHistoryCmd(g *globals) *cobra.Command {
	var (
		limit  int
		output *outputFormat
		flags  *backendFlags
	)
	cmd := &cobra.Command{
		Use:   "history NAME",
		Short: "Show what happened to a rollout, oldest first",
		Long: `history prints a rollout's events as a timeline: the local time of each, the
phase and canary weight it left the rollout in, and what happened. The date is
printed whenever it changes. Warnings (failed checks, rollbacks) are marked
WARNING.

--limit keeps the most recent events only; -o json and -o yaml print them as the
control API returns them.`,
		Example: `  pipit history web
  pipit history web --limit 20
  pipit history web -o json | jq -r '.[] | select(.type == "Warning") | .message'`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if limit < 0 {
				return BadInputf("--limit %d: want 0 (all) or more", limit)
			}
			b, err := flags.backend()
			if err != nil {
				return err
			}
			evs, err := b.Events(cmd.Context(), args[0], limit)
			if err != nil {
				return err
			}
			return output.print(cmd.OutOrStdout(), evs, func() string { return timeline(evs, time.Local) })
		},
	}
	flags = addBackendFlags(cmd, g)
	cmd.Flags().IntVar(&limit, "limit", 0, "show only the most recent N events (0: all)")
	output = addOutputFlag(cmd, "table")
	return cmd
}

// timeline writes events one a line, "09:05:00  Progressing  5%  message",
// in loc's time, with a line giving the date before the first event of
// each day.
func timeline(evs []v1alpha1.Event, loc *time.Location) string {
	if len(evs) == 0 {
		return "No events.\n"
	}
	phaseWidth, weightWidth := 0, 0
	for _, e := range evs {
		phaseWidth = max(phaseWidth, len(phase(e.Phase)))
		weightWidth = max(weightWidth, len(e.Weight.String()))
	}
	var b strings.Builder
	day := ""
	for _, e := range evs {
		t := e.Time.In(loc)
		if d := t.Format(time.DateOnly); d != day {
			day = d
			fmt.Fprintf(&b, "%s\n", t.Format("Monday 2006-01-02"))
		}
		msg := e.Message
		if e.Type == v1alpha1.EventWarning {
			msg = "WARNING " + msg
		}
		fmt.Fprintf(&b, "%s  %-*s  %*s  %s\n", t.Format(time.TimeOnly), phaseWidth, phase(e.Phase), weightWidth, e.Weight, msg)
	}
	return b.String()
}
