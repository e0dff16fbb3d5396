package target

import (
	"context"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/pipit-dev/pipit/api/v1alpha1"
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
	serving, canary, ok := d.observeCopies(ctx)
	if !ok {
		return o
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

// State reports what the serving copy and the canary copy run and how
// many of their pods are ready, for the status of a coordinated rollout;
// what the API server did not tell is left out.
func (d *Deployment) State(ctx context.Context) v1alpha1.TargetStatus {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	s := v1alpha1.TargetStatus{Name: d.plan.Target}
	serving, canary, _ := d.observeCopies(ctx)
	if serving != nil {
		s.StableRevision = serving.Annotations[AnnotationTemplateHash]
		s.StableVersion = versionOf(&serving.Spec.Template).Version
		s.StableReady = serving.Status.ReadyReplicas
	}
	if canary != nil && replicasOf(canary) > 0 {
		s.CanaryRevision = canary.Annotations[AnnotationTemplateHash]
		s.CanaryVersion = versionOf(&canary.Spec.Template).Version
		s.CanaryReady = canary.Status.ReadyReplicas
	}
	return s
}

// observeCopies reads the copy serving the stable version and the one
// running the canary (nil when none does); ok is false when the stable
// copy could not be read, so nothing is known. A canary copy that could
// not be read is nil.
func (d *Deployment) observeCopies(ctx context.Context) (serving, canary *appsv1.Deployment, ok bool) {
	stable, err := d.getCopy(ctx, d.plan.StableWorkload)
	if err != nil {
		d.log.Debug("observe stable copy", "err", err)
		return nil, nil, false
	}
	canary, err = d.getCopy(ctx, d.plan.CanaryWorkload)
	if err != nil {
		d.log.Debug("observe canary copy", "err", err)
	}
	if servingRole(stable) == RoleCanary {
		return canary, nil, true
	}
	return stable, canary, true
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
