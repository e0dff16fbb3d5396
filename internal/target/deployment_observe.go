package target

import (
	"context"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/pipit-dev/pipit/internal/rollout"
)

// What the runtime observes of the copies: the canary's version and health,
// the stable version served, read from the Deployments' status.

// Observe reports the canary copy's version and health and the version
// the serving copy serves once rolled out: the stable copy's, or the
// canary copy's while it serves the stable version after a promotion (it
// runs no canary then). Errors from the API server leave what they hide
// unknown.
func (d *Deployment) Observe(ctx context.Context) rollout.Observed {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	o := rollout.Observed{CanaryHealth: rollout.HealthUnknown}
	stable, err := d.getCopy(ctx, d.plan.StableWorkload)
	if err != nil {
		d.log.Debug("observe stable copy", "err", err)
		return o
	}
	canary, err := d.getCopy(ctx, d.plan.CanaryWorkload)
	if err != nil {
		d.log.Debug("observe canary copy", "err", err)
	}
	serving := stable
	if servingRole(stable) == RoleCanary {
		serving, canary = canary, nil
	}
	if serving != nil && rolledOut(serving) {
		o.StableVersion = serving.Annotations[AnnotationTemplateHash]
	}
	if canary != nil && replicasOf(canary) > 0 {
		o.CanaryVersion = canary.Annotations[AnnotationTemplateHash]
		if rolledOut(canary) {
			o.CanaryHealth = rollout.HealthUp
		} else if reason, failed := progressFailed(canary); failed {
			o.CanaryHealth, o.CanaryReason, o.CanaryFailed = rollout.HealthDown, reason, true
		}
	}
	return o
}

// rolledOut reports whether a Deployment runs its current template on all
// its replicas, all available, and nothing else: what `kubectl rollout
// status` waits for, with at least one replica.
func rolledOut(dep *appsv1.Deployment) bool {
	want, s := replicasOf(dep), dep.Status
	return want > 0 && s.ObservedGeneration >= dep.Generation &&
		s.UpdatedReplicas == want && s.Replicas == want && s.AvailableReplicas == want
}

// progressFailed reports a Deployment whose current template did not
// progress within its progress deadline, and the controller's message.
func progressFailed(dep *appsv1.Deployment) (string, bool) {
	if dep.Status.ObservedGeneration < dep.Generation {
		return "", false // the condition may describe the previous template
	}
	for _, c := range dep.Status.Conditions {
		if c.Type == appsv1.DeploymentProgressing && c.Status == corev1.ConditionFalse && c.Reason == "ProgressDeadlineExceeded" {
			return fmt.Sprintf("Deployment %s: %s", dep.Name, c.Message), true
		}
	}
	return "", false
}
