package cli

import (
	"github.com/spf13/cobra"

	"github.com/pipit-dev/pipit/internal/rollout"
)

func init() { register(newPromoteCmd) }

func newPromoteCmd(g *globals) *cobra.Command {
	var (
		full  bool
		flags *commandFlags
	)
	cmd := &cobra.Command{
		Use:   "promote NAME",
		Short: "Move a rollout past its current step, or all the way with --full",
		Long: `promote moves a rollout on by hand. When the rollout waits for a person (an
indefinite pause, or a manual or hybrid decision) it gives the go-ahead; otherwise
it skips the current step. A paused rollout is resumed. Once every step is done
there is no step left to skip, and the command is refused: --full promotes at once.

With --full it skips every remaining step and makes the canary the stable version.

It exits 1 if no rollout is in flight, or every step is done.`,
		Example: `  # approve the next stage
  pipit promote web

  # skip the remaining steps
  pipit promote web --full --reason "hotfix, verified in staging"`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			kind := rollout.CommandPromote
			if full {
				kind = rollout.CommandPromoteFull
			}
			return flags.submit(cmd, args[0], rollout.Command{Kind: kind})
		},
	}
	flags = addCommandFlags(cmd, g)
	cmd.Flags().BoolVar(&full, "full", false, "skip every remaining step and promote the canary")
	return cmd
}
