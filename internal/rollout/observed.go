package rollout

import "github.com/pipit-dev/pipit/api/v1alpha1"

// Health is what the runtime knows of the canary's liveness.
type Health int

const (
	// HealthUnknown: not probed yet (for example just after a restart).
	HealthUnknown Health = iota
	// HealthUp: the canary answers its health checks.
	HealthUp
	// HealthDown: the canary stopped answering.
	HealthDown
)

// Observed is what the runtime sees of the world when it calls Step.
type Observed struct {
	// CanaryVersion is the ID (VersionRef.ID) of the version CanaryHealth
	// describes. Health reported for another version (the one just
	// replaced) counts as unknown.
	CanaryVersion string
	// CanaryHealth of CanaryVersion.
	CanaryHealth Health
	// CanaryReason says why the canary is down, for events.
	CanaryReason string
	// CanaryFailed says the canary is down for good rather than not up
	// yet (its processes crash in a loop): an anomaly even before it
	// receives traffic, instead of a wait until the progress deadline.
	CanaryFailed bool
	// StableVersion is the ID of the version the stable target serves
	// now. A promotion is complete when it equals the canary's.
	StableVersion string
	// Weight is the canary weight the router applies now. A rollback is
	// complete when it is zero.
	Weight v1alpha1.Percent
}

// Measurement is one metric measured over one window for both versions.
// A nil value means there was nothing to measure (no requests), which is
// not the same as zero.
type Measurement struct {
	Metric string
	Canary *float64
	Stable *float64
	// CanarySamples and StableSamples are the window's samples, for metrics
	// that compare distributions.
	CanarySamples, StableSamples []float64
	// CanaryUsers and StableUsers are the counts behind a conversion
	// rate, for comparing the two by a test of proportions; nil for other
	// metrics.
	CanaryUsers, StableUsers *Conversions
	// Err is set when measuring failed; the values are then ignored.
	Err error
}

// Conversions are the users of one version who reached a goal, out of
// those who visited it.
type Conversions struct {
	Converted, Visitors uint64
}

// Alarm is evidence, found between checks by a continuous test, that the
// canary is worse than the stable version.
type Alarm struct {
	// Metric names what showed it, such as "error-rate (sequential)".
	Metric string
	// Reason is the evidence, in a sentence.
	Reason string
}
