package cli

import (
	"github.com/spf13/cobra"

	"github.com/pipit-dev/pipit/internal/rollout"
)

func init() { register(newResumeCmd) }

func newResumeCmd(g *globals) *cobra.Command {
	return newSimpleCommand(g, rollout.CommandResume,
		"Restart the clock of a paused rollout",
		`resume lets a paused rollout go on from where it stopped; a pause step keeps the
soak time it had left when the rollout was paused.

It exits 1 if the rollout is not paused.`,
		`  pipit resume web`)
}
