package rollout

import (
	"context"

	"github.com/pipit-dev/pipit/api/v1alpha1"
)

// Target runs the versions of a service. Each method is an idempotent
// desired state: calling it again after a crash does no harm.
type Target interface {
	// Install makes v serve as the stable version when there was none.
	Install(ctx context.Context, v v1alpha1.VersionRef) error
	// DeployCanary makes v run as the canary.
	DeployCanary(ctx context.Context, v v1alpha1.VersionRef) error
	// Promote makes v serve as the stable version.
	Promote(ctx context.Context, v v1alpha1.VersionRef) error
	// RetireCanary stops v from running as the canary.
	RetireCanary(ctx context.Context, v v1alpha1.VersionRef) error
	// Observe reports the versions the target serves and the canary's
	// health.
	Observe(ctx context.Context) Observed
}

// Router splits traffic between stable and canary.
type Router interface {
	// SetWeight sends w of the traffic to the canary; canaryLive says
	// whether requests may reach the canary at all (see
	// Action.CanaryLive).
	SetWeight(ctx context.Context, w v1alpha1.Percent, canaryLive bool) error
	// Weight is the share the router applies now.
	Weight() v1alpha1.Percent
}

// RouteRemover is a Router that changed objects it does not own (a user's
// route) and can take its changes back when the rollout is deleted.
type RouteRemover interface {
	Router
	// Remove takes the router's changes out of objects the rollout does
	// not own.
	Remove(ctx context.Context) error
}

// Meter measures a rollout's analysis metrics.
type Meter interface {
	// Measure measures every metric over the window since the last call,
	// for the status' canary and stable versions.
	Measure(ctx context.Context, st v1alpha1.RolloutStatus) []Measurement
	// Tick runs the continuous tests at every tick and returns their
	// alarms.
	Tick(st v1alpha1.RolloutStatus) []Alarm
	// Reset starts a new window, for a new canary.
	Reset()
}

// Store keeps a rollout's state.
type Store interface {
	// Save writes the status, its events and the consumption of commands
	// in one durable step.
	Save(ctx context.Context, status v1alpha1.RolloutStatus, events []v1alpha1.Event, consumed []int64) error
	// Pending returns the commands not yet consumed, oldest first.
	Pending(ctx context.Context) ([]PendingCommand, error)
}
