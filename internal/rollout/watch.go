package rollout

import "github.com/pipit-dev/pipit/api/v1alpha1"

// Watching reports whether the watch after a promotion (spec.postPromotion)
// runs in st: the promotion completed, and the watch has neither ended nor
// been cut short by an undo. Meanwhile there is no canary: the Meter
// measures the watched metrics of the stable version alone, and the
// engine judges them against their bounds and the previous version's
// baselines.
func Watching(st v1alpha1.RolloutStatus) bool {
	w := st.Watch
	return st.Phase == v1alpha1.PhaseSucceeded && w != nil && w.Until != nil && w.NextCheckAt != nil && w.Outcome == ""
}
