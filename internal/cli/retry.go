package cli

import (
	"github.com/spf13/cobra"

	"github.com/pipit-dev/pipit/internal/rollout"
)

func init() { register(newRetryCmd) }

func newRetryCmd(g *globals) *cobra.Command {
	return newSimpleCommand(g, rollout.CommandRetry,
		"Roll the last canary out again after it was rolled back",
		`retry starts the canary of a rollout that was rolled back, aborted or failed
again, from the first step.

It exits 1 if the rollout did not end that way.`,
		`  pipit retry web --reason "flaky dependency fixed"`)
}
