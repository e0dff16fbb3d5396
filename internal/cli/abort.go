package cli

import (
	"github.com/spf13/cobra"

	"github.com/pipit-dev/pipit/internal/rollout"
)

func init() { register(newAbortCmd) }

func newAbortCmd(g *globals) *cobra.Command {
	return newSimpleCommand(g, rollout.CommandAbort,
		"Take all traffic off the canary now",
		`abort ends a rollout in flight: all traffic goes back to the stable version at
once and the rollout ends Aborted. `+"`pipit retry`"+` starts the same canary again.

It exits 1 if no rollout is in flight.`,
		`  pipit abort web --reason "checkout errors reported by support"`)
}
