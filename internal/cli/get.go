package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/pipit-dev/pipit/internal/controlapi"
	"github.com/pipit-dev/pipit/internal/rollout"
)

func init() { register(newGetCmd) }

// barWidth is the number of marks of the weight bar: one per 5%.
const barWidth = 20

func newGetCmd(g *globals) *cobra.Command {
	var (
		watch    bool
		interval time.Duration
		flags    *backendFlags
	)
	cmd := &cobra.Command{
		Use:   "get NAME",
		Short: "Show one rollout's progress, live with --watch",
		Long: `get shows where one rollout stands: the canary's share of traffic as a bar, the
current step and what it does, the phase and why, and what the proxy measures of
the stable and the canary side by side.

With --watch it asks again every --interval and shows the rollout as it moves.
On a terminal the view is redrawn in place; otherwise (a pipe, a CI log) a new
view is printed each time something changed. It exits 0 once the rollout ends
(Succeeded, RolledBack, Aborted or Failed) or on Ctrl-C.`,
		Example: `  pipit get web
  pipit get web --watch
  pipit get web --watch --interval 5s`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if interval < 100*time.Millisecond {
				return BadInputf("--interval %v: want at least 100ms", interval)
			}
			b, err := flags.backend()
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if !watch {
				v, err := b.Rollout(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				_, err = io.WriteString(out, watchView(v))
				return err
			}
			return watchRollout(cmd.Context(), g.clock, b, args[0], interval, out, isTerminal(out))
		},
	}
	flags = addBackendFlags(cmd, g)
	cmd.Flags().BoolVarP(&watch, "watch", "w", false, "keep showing the rollout until it ends")
	cmd.Flags().DurationVar(&interval, "interval", time.Second, "time between two looks with --watch")
	return cmd
}

// watchRollout shows the rollout until it ends or ctx is done. On a
// terminal it redraws the view in place; elsewhere it appends a view only
// when it changed, so a log holds each state once.
func watchRollout(ctx context.Context, clock rollout.Clock, b controlapi.Backend, name string, interval time.Duration, out io.Writer, tty bool) error {
	var last string
	for {
		v, err := b.Rollout(ctx, name)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if view := watchView(v); view != last {
			switch {
			case tty && last != "":
				// Up to the first line of the old view, then clear below.
				fmt.Fprintf(out, "\x1b[%dA\x1b[J", strings.Count(last, "\n"))
			case last != "":
				fmt.Fprintln(out)
			}
			if _, err := io.WriteString(out, view); err != nil {
				return err
			}
			last = view
		}
		if v.Status.Phase.Terminal() {
			return nil
		}
		if rollout.Sleep(ctx, clock, interval) != nil {
			return nil
		}
	}
}

// isTerminal reports whether w is a terminal, where redrawing works.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// watchView is the live view of one rollout. It depends on the rollout
// alone, not on the clock, so an unchanged rollout draws the same text.
func watchView(v controlapi.RolloutView) string {
	var b strings.Builder
	st := v.Status
	fmt.Fprintf(&b, "%s  %s  stable %s, canary %s\n", v.Name, phase(st.Phase), version(st.Stable), version(st.Canary))
	fmt.Fprintf(&b, "%s\n", progressBar(st.CanaryWeight, barWidth))
	if s := stepLabel(v); s != "-" {
		fmt.Fprintf(&b, "Step %s\n", s)
	}
	if st.Message != "" {
		fmt.Fprintf(&b, "%s\n", st.Message)
	}
	if g := st.Gate; g != nil {
		fmt.Fprintf(&b, "Waiting for a person (%s): %s\n  go on: pipit promote %s    roll back: pipit abort %s\n",
			g.Kind, g.Reason, v.Name, v.Name)
	}
	if r := st.Rollback; r != nil {
		fmt.Fprintf(&b, "Rollback: %s\n", r.Reason)
	}
	b.WriteString("\n")
	b.WriteString(liveTable(v.Live, ""))
	return b.String()
}
