package cli

import (
	"github.com/spf13/cobra"

	"github.com/pipit-dev/pipit/internal/rollout"
)

func init() {
	register(newApproveCmd)
	register(newRejectCmd)
}

func newApproveCmd(g *globals) *cobra.Command {
	return newSimpleCommand(g, rollout.CommandApprove,
		"Approve the decision a rollout waits for, so it goes on",
		`approve lets a rollout that waits for a person go on: an approval step, a manual
stage or promotion, an indefinite pause, or a hybrid rollout's anomaly review. Who
approved, when and why (--reason) is kept in the history.

It exits 1 if the rollout is not waiting for a decision.`,
		`  pipit approve web --reason "QA signed off on staging"`)
}

func newRejectCmd(g *globals) *cobra.Command {
	return newSimpleCommand(g, rollout.CommandReject,
		"Reject the decision a rollout waits for: roll the canary back",
		`reject answers "no" to a rollout that waits for a person: all traffic goes back to
the stable version at once and the rollout ends Aborted, with who rejected it and
why (--reason) in the history.

It exits 1 if the rollout is not waiting for a decision.`,
		`  pipit reject web --reason "checkout button misaligned"`)
}
