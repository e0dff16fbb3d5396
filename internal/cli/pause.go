package cli

import (
	"github.com/spf13/cobra"

	"github.com/pipit-dev/pipit/internal/rollout"
)

func init() { register(newPauseCmd) }

func newPauseCmd(g *globals) *cobra.Command {
	return newSimpleCommand(g, rollout.CommandPause,
		"Stop a rollout's clock, keeping the canary's share of traffic",
		`pause stops a progressing rollout where it is: the canary keeps its share of
traffic, but no step advances and no pause runs down until `+"`pipit resume`"+`.
Analysis checks wait too, but health checks go on: a canary that goes down is
still rolled back.

It exits 1 if the rollout is not progressing.`,
		`  pipit pause web --reason "waiting for the database migration"`)
}
