package cli

import (
	"github.com/spf13/cobra"

	"github.com/pipit-dev/pipit/internal/rollout"
)

func init() { register(newUndoCmd) }

func newUndoCmd(g *globals) *cobra.Command {
	return newSimpleCommand(g, rollout.CommandUndo,
		"Switch back to the previous stable version at once, after a promotion",
		`undo reverts the last promotion within the rollout's undo window (undoWindow,
default 15m): all traffic goes back to the previous stable version in one switch,
without running the steps again. Process targets keep the previous version running
during the window, so the switch is instant. The rollout ends RolledBack; `+"`pipit retry`"+`
rolls the undone version out again from the first step.

It exits 1 when there is nothing to undo or the window has closed.`,
		`  pipit undo web --reason "checkout latency up since the promotion"`)
}
