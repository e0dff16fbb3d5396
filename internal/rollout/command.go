package rollout

import "github.com/pipit-dev/pipit/api/v1alpha1"

// CommandKind names an operator command.
type CommandKind string

const (
	// CommandDeploy starts rolling out Canary; mid-rollout it replaces the
	// canary and restarts the analysis from the first step.
	CommandDeploy CommandKind = "deploy"
	// CommandPause stops the clock of a progressing rollout.
	CommandPause CommandKind = "pause"
	// CommandResume restarts the clock, keeping the remaining soak time.
	CommandResume CommandKind = "resume"
	// CommandPromote goes past the current step or the awaited decision.
	CommandPromote CommandKind = "promote"
	// CommandPromoteFull skips every remaining step and promotes.
	CommandPromoteFull CommandKind = "promote-full"
	// CommandAbort takes all traffic off the canary now.
	CommandAbort CommandKind = "abort"
	// CommandRetry starts the same canary again after a rollback.
	CommandRetry CommandKind = "retry"
	// CommandApprove goes past the decision awaited (an approval step, a
	// manual stage, a hybrid anomaly), as promote does, but only then.
	CommandApprove CommandKind = "approve"
	// CommandReject rolls back instead of going past the decision awaited.
	CommandReject CommandKind = "reject"
	// CommandUndo switches back to the stable version before the last
	// promotion, at once, within the rollout's undo window.
	CommandUndo CommandKind = "undo"
	// CommandSetWeight sends Weight of the traffic to the canary now, in
	// place of the current step's weight, until a later step sets its own.
	CommandSetWeight CommandKind = "set-weight"
)

// Command is an operator's request.
type Command struct {
	Kind CommandKind
	// Canary is the version to roll out (CommandDeploy only).
	Canary *v1alpha1.VersionRef
	// Weight is the canary's share of traffic (CommandSetWeight only).
	Weight *v1alpha1.Percent
	// Actor is who asked, for the history.
	Actor string
	// Reason is the operator's own words, for the history.
	Reason string
}

// PendingCommand is an operator command waiting in a Store.
type PendingCommand struct {
	// ID is the store's, to mark the command consumed.
	ID int64
	Command
}
