package cli

import (
	"github.com/spf13/cobra"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/rollout"
)

func init() { register(newSetWeightCmd) }

func newSetWeightCmd(g *globals) *cobra.Command {
	var flags *commandFlags
	cmd := &cobra.Command{
		Use:   "set-weight NAME PERCENT",
		Short: "Send a share of traffic to the canary now, in place of the current step's",
		Long: `set-weight sends PERCENT of the traffic to the canary at once, in place of the
share the current step set (0 to below 100, in steps of 0.001%: 0.5, 12.5%). The
rollout goes on as before: a pause keeps running down, analysis checks go on at
the new weight, and promotion still needs a passing check at the last weight. The
plan's next setWeight step sets its own weight again. A paused rollout stays
paused at the new weight.

To send all the traffic to the canary, promote it: pipit promote NAME --full.

It exits 1 if no rollout is in flight or the canary is not healthy yet, and 2
if PERCENT is not a share of traffic.`,
		Example: `  # more traffic to warm the canary's caches before the next check
  pipit set-weight web 20 --reason "warming caches"

  # back to almost nothing while the on-call looks at a graph
  pipit set-weight web 0.5`,
		Args: exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			w, err := v1alpha1.ParsePercent(args[1])
			if err != nil {
				return BadInputf("PERCENT: %v", err)
			}
			if w < 0 || w >= v1alpha1.FullWeight {
				return BadInputf("PERCENT: %s is not from 0 to below 100; to send all traffic to the canary, promote it (pipit promote %s --full)", w, args[0])
			}
			return flags.submit(cmd, args[0], rollout.Command{Kind: rollout.CommandSetWeight, Weight: &w})
		},
	}
	flags = addCommandFlags(cmd, g)
	return cmd
}
