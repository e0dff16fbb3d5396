package target

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
)

// Taking the service over from the user's Deployment (held at zero
// replicas while the copies serve) and handing it back when the Rollout goes.

// Release hands the service back to the user's Deployment when the Rollout
// is deleted: it scales the target back to the replicas it had before
// pipit held it at zero. It returns ErrNotReady until the target is rolled
// out, so the caller keeps the copies (and their owner) until then; a
// target that cannot roll out (its progress deadline passed) is handed
// back as it is. The copies and Services are left to garbage collection.
func (d *Deployment) Release(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	t, err := d.target(ctx)
	if errors.Is(err, ErrTargetNotFound) {
		d.log.Info("nothing to release: the target is gone", "deployment", d.plan.Target)
		return nil
	}
	if err != nil {
		return err
	}
	if _, held := t.Annotations[AnnotationOriginalReplicas]; !held && replicasOf(t) > 0 {
		return d.releaseApexService(ctx, t) // never held at zero, or released already
	}
	restore, err := d.restoredReplicas(ctx, t)
	if err != nil {
		return err
	}
	// The annotation stays until the target rolled out: it says a
	// release is under way.
	err = d.modifyDeployment(ctx, d.plan.Target, func(dep *appsv1.Deployment) error {
		if replicasOf(dep) == 0 {
			dep.Spec.Replicas = &restore
			dep.Annotations = merged(dep.Annotations, map[string]string{AnnotationOriginalReplicas: strconv.Itoa(int(restore))})
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("release: %w", err)
	}
	if t, err = d.target(ctx); err != nil {
		return err
	}
	if !rolledOut(t) {
		reason, failed := progressFailed(t)
		if !failed {
			return fmt.Errorf("waiting for Deployment %s to roll out: %w", d.name(d.plan.Target), ErrNotReady)
		}
		d.log.Warn("handing back a Deployment that cannot roll out", "deployment", d.plan.Target, "reason", reason)
	}
	err = d.modifyDeployment(ctx, d.plan.Target, func(dep *appsv1.Deployment) error {
		delete(dep.Annotations, AnnotationOriginalReplicas)
		return nil
	})
	if err != nil {
		return fmt.Errorf("release: %w", err)
	}
	return d.releaseApexService(ctx, t)
}

// restoredReplicas is what Release gives the target back: the replicas
// remembered, else the stable copy's.
func (d *Deployment) restoredReplicas(ctx context.Context, t *appsv1.Deployment) (int32, error) {
	if n, ok := rememberedReplicas(t); ok {
		return n, nil
	}
	stable, err := d.getCopy(ctx, d.plan.StableWorkload)
	if err != nil {
		return 0, err
	}
	if stable != nil && replicasOf(stable) > 0 {
		return replicasOf(stable), nil
	}
	return 1, nil
}

// park holds the target at zero replicas, remembering the replicas it had:
// the copies serve in its place. A target scaled up again by the user is
// parked again, and its new replicas remembered.
func (d *Deployment) park(ctx context.Context) error {
	err := d.modifyDeployment(ctx, d.plan.Target, func(t *appsv1.Deployment) error {
		n := replicasOf(t)
		if n == 0 {
			return nil
		}
		if t.Annotations == nil {
			t.Annotations = map[string]string{}
		}
		t.Annotations[AnnotationOriginalReplicas] = strconv.Itoa(int(n))
		t.Spec.Replicas = new(int32(0))
		return nil
	})
	if err != nil {
		return fmt.Errorf("scale the target to zero: %w", err)
	}
	return nil
}
