package engine

import "github.com/pipit-dev/pipit/api/v1alpha1"

// maxSettleDecisions bounds the decisions Settle takes in a row; a
// promotion or rollback that takes effect at once needs two.
const maxSettleDecisions = 4

// Settle takes one decision, then more at once while the rollout is in a
// transient phase (Promoting, RollingBack), so that a promotion or a
// rollback the world carries out at once completes within one tick
// instead of one tick later. decide takes one decision and returns the
// phase it left the rollout in.
//
// Between two decisions the caller carries out the actions and observes
// the world again (a promotion completes only once the target serves the
// canary as stable): that is why Settle takes the decision as a function
// instead of calling Step. Settle itself does no I/O; decide does whatever
// its caller does. Settle returns decide's first error at once, and
// settled false when the rollout is still in a transient phase after
// maxSettleDecisions decisions.
func Settle(decide func() (v1alpha1.Phase, error)) (settled bool, err error) {
	for range maxSettleDecisions {
		p, err := decide()
		if err != nil {
			return false, err
		}
		if !transient(p) {
			return true, nil
		}
	}
	return false, nil
}

// transient reports whether a rollout in phase p is on its way to another
// phase that the world, not time or a person, brings about.
func transient(p v1alpha1.Phase) bool {
	return p == v1alpha1.PhasePromoting || p == v1alpha1.PhaseRollingBack
}
