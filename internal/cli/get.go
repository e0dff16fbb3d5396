package cli

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/pipit-dev/pipit/internal/controlapi"
)

func init() { register(newGetCmd) }

// barWidth is the number of marks of the weight bar: one per 5%.
const barWidth = 20

func newGetCmd(g *globals) *cobra.Command {
	var (
		watch    bool
		interval time.Duration
		timeout  time.Duration
		output   *outputFormat
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
view is printed each time something changed. It ends with the rollout, and its exit
status is the rollout's outcome, for CI jobs to gate on: 0 when it succeeded, 1 when
it was rolled back, aborted or failed, 124 when --timeout passed first (as
timeout(1)) and 130 when interrupted.

When nothing is in flight (the rollout is idle, or its last rollout has ended) the
watch waits for the next rollout to start and follows it: right after a new version
was handed over (kubectl set image, say) the last outcome is still the previous
release's, and a CI job must not pass on it.

-o json and -o yaml print the rollout as the control API returns it; with --watch,
one document each time it changed (YAML documents separated by ---), never redrawn.`,
		Example: `  pipit get web
  pipit get web --watch
  pipit get web --watch --interval 5s
  pipit get web --kube --watch --timeout 15m   # in CI, after kubectl set image
  pipit get web -o json | jq .status.canaryWeight`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if interval < 100*time.Millisecond {
				return BadInputf("--interval %v: want at least 100ms", interval)
			}
			if err := checkTimeout(cmd, timeout, "watch"); err != nil {
				return err
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
				return output.print(out, v, func() string { return watchView(v) })
			}
			w := &watcher{clock: g.clock, backend: b, name: args[0], interval: interval, timeout: timeout,
				out: out, notes: cmd.ErrOrStderr(), tty: isTerminal(out) && !output.isDocument()}
			if output.isDocument() {
				w.render = output.watchDocument
			}
			return w.watch(cmd.Context(), nil)
		},
	}
	flags = addBackendFlags(cmd, g)
	cmd.Flags().BoolVarP(&watch, "watch", "w", false, "keep showing the rollout until it ends")
	cmd.Flags().DurationVar(&interval, "interval", time.Second, "time between two looks with --watch")
	output = addOutputFlag(cmd, "text")
	cmd.Flags().DurationVar(&timeout, "timeout", 0, "with --watch, exit 124 if the rollout has not ended by then (default: no limit)")
	return cmd
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
	if t := targetsTable(st.Targets, ""); t != "" {
		b.WriteString("\n" + t)
	}
	b.WriteString("\n")
	b.WriteString(liveTable(v.Live, ""))
	return b.String()
}
