package rollout

import "github.com/pipit-dev/pipit/api/v1alpha1"

// ActionKind names a side effect the runtime must carry out.
type ActionKind string

const (
	// ActionInstall makes the target serve Version as the stable version
	// when there was none: a first install, with nothing to compare it
	// with, so no canary and no analysis.
	ActionInstall ActionKind = "Install"
	// ActionDeployCanary makes the target run Version as the canary.
	ActionDeployCanary ActionKind = "DeployCanary"
	// ActionSetWeight makes the router send Weight of traffic to the
	// canary, and says whether requests may reach the canary at all
	// (CanaryLive).
	ActionSetWeight ActionKind = "SetWeight"
	// ActionPromote makes the target serve the canary's Version as stable.
	ActionPromote ActionKind = "Promote"
	// ActionRetireCanary stops routing to, and running, the canary Version.
	ActionRetireCanary ActionKind = "RetireCanary"
	// ActionRunHooks runs every webhook of type Hook, as run number Run; the
	// answer comes back as a HookResult.
	ActionRunHooks ActionKind = "RunHooks"
)

// Action is one side effect. Actions are idempotent desired states, so
// carrying one out twice (for example after a crash) does no harm.
type Action struct {
	Kind ActionKind
	// Weight is the canary's share (ActionSetWeight).
	Weight v1alpha1.Percent
	// CanaryLive says whether requests may reach the canary at all
	// (ActionSetWeight): not before a rollout, and not from the moment it
	// rolls back. Routers with match rules or sticky sessions send matched
	// requests to a live canary whatever its weight, and none to a canary
	// that is not.
	CanaryLive bool
	// Version is the version acted on (Install, DeployCanary, Promote,
	// RetireCanary).
	Version *v1alpha1.VersionRef
	// Hook is the type of webhooks to run (ActionRunHooks).
	Hook v1alpha1.HookType
	// Run numbers the hook run (ActionRunHooks).
	Run int64
}
