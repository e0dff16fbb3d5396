package spec

import (
	"net"
	"slices"
	"time"

	"github.com/pipit-dev/pipit/api/v1alpha1"
)

// DefaultPreviewChecks is how many passing checks of a blue-green
// preview the switch waits for when blueGreen.checks is not written.
const DefaultPreviewChecks = 1

// blueGreen checks spec.strategy.blueGreen against the runtime the
// rollout is for: a preview address in standalone, a preview Service in
// Kubernetes.
func (v *validator) blueGreen(s *v1alpha1.RolloutSpec) {
	bg := s.Strategy.BlueGreen
	if bg == nil {
		return
	}
	const p = "spec.strategy.blueGreen"
	if bg.Checks != nil && *bg.Checks < 1 {
		v.add(p+".checks", "must be at least 1, not %d", *bg.Checks)
	}
	v.positive(p+".autoPromotionAfter", bg.AutoPromotionAfter)
	if bg.PreviewListen != "" {
		switch reason := checkListen(bg.PreviewListen); {
		case s.Service == nil:
			v.add(p+".previewListen", "is for the standalone runtime (spec.service); in Kubernetes use previewService")
		case reason != "":
			v.add(p+".previewListen", "%s", reason)
		case bg.PreviewListen == s.Service.Listen && !HasZeroPort(bg.PreviewListen):
			v.add(p+".previewListen", "is spec.service.listen too; the preview needs an address of its own, such as 127.0.0.1:8081")
		}
	}
	if bg.PreviewService != "" {
		if s.TargetRef == nil {
			v.add(p+".previewService", "is for the Kubernetes runtime (spec.targetRef); standalone uses previewListen")
		} else {
			v.optionalLabel(p+".previewService", bg.PreviewService)
			kp := ResolveKubernetes(&v1alpha1.Rollout{Spec: *s})
			if slices.Contains([]string{kp.Service, kp.StableService, kp.CanaryService}, bg.PreviewService) {
				v.add(p+".previewService", "%q is one of the Services pipit keeps for the rollout (%s, %s, %s); name a Service of its own",
					bg.PreviewService, kp.Service, kp.StableService, kp.CanaryService)
			}
		}
	}
}

// HasZeroPort reports whether a listen address asks for any free port
// (":0"): such an address is never shared.
func HasZeroPort(addr string) bool {
	_, port, err := net.SplitHostPort(addr)
	return err == nil && port == "0"
}

// expandBlueGreen turns a blue-green strategy into the steps the engine
// runs at weight 0 while the new version is previewed: the checks the
// switch waits for, then, in automatic and hybrid mode, the wait of
// autoPromotionAfter (in manual mode it bounds the wait for a person
// instead, see Plan.AutoPromotionAfter). The switch itself is the
// promotion that follows the last step.
func expandBlueGreen(bg *v1alpha1.BlueGreenStrategy, decision v1alpha1.DecisionMode) []PlanStep {
	checks := DefaultPreviewChecks
	if bg.Checks != nil {
		checks = int(*bg.Checks)
	}
	steps := []PlanStep{{Kind: StepAnalysis, Checks: checks}}
	if d := autoPromotionAfter(bg); d > 0 && decision != v1alpha1.DecisionManual {
		steps = append(steps, PlanStep{Kind: StepPause, Duration: d})
	}
	return steps
}

func autoPromotionAfter(bg *v1alpha1.BlueGreenStrategy) time.Duration {
	if bg == nil {
		return 0
	}
	return durationOr(bg.AutoPromotionAfter, 0)
}
