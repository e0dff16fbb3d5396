package target

import (
	"context"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/spec"
)

// Keeping the previous version warm after a promotion, so that an undo
// inside the undo window creates no pod (Argo Rollouts' blue-green model).
// A promotion does not roll the stable copy: the Services switch to the
// canary copy, whose pods run the new version already — one selector
// update each — and the stable copy keeps running the previous version,
// selected by no Service. An undo switches the selectors back. Once the
// window passed, or when the next canary needs the canary copy, the stable
// copy rolls out the serving version, the Services switch back to it and
// the canary copy is scaled down (consolidate).

// Annotations on the stable copy that say which copy serves the stable
// version; they survive controller restarts.
const (
	// AnnotationServing is RoleCanary while the canary copy serves the
	// stable version and the stable copy keeps the previous one warm;
	// absent when the stable copy serves.
	AnnotationServing = "pipit.dev/serving"
	// AnnotationServingSince is when the Services switched to the canary
	// copy (RFC 3339): the undo window counts from it.
	AnnotationServingSince = "pipit.dev/serving-since"
)

// keepsWarm reports whether a promotion keeps the previous version warm
// by switching Services: with an undo window, and unless Istio routes by
// the subsets of a DestinationRule, which pick the copies' pods by their
// role label whatever the Services select.
func (d *Deployment) keepsWarm() bool {
	return d.plan.UndoWindow > 0 && !d.routesBySubsets()
}

// routesBySubsets reports whether Istio routes to the apex Service's pods
// by role (spec.kubernetes.router.istio.destinationRule): the apex Service
// must then select both copies.
func (d *Deployment) routesBySubsets() bool {
	return d.plan.Router == spec.RouterIstio && d.plan.DestinationRule != ""
}

// servingRole is the role of the copy whose pods serve the stable version.
func servingRole(stable *appsv1.Deployment) string {
	if stable != nil && stable.Annotations[AnnotationServing] == RoleCanary {
		return RoleCanary
	}
	return RoleStable
}

// runs reports whether a copy runs v on at least one replica.
func runs(dep *appsv1.Deployment, v v1alpha1.VersionRef) bool {
	return dep != nil && replicasOf(dep) > 0 && dep.Annotations[AnnotationTemplateHash] == v.Template
}

// promoteBySwitch makes v the stable version by switching the Services
// when a copy runs it already, and reports whether it did: to the canary
// copy on a promotion, once that copy is rolled out (ErrNotReady until
// then); back to the stable copy on an undo, when the stable copy keeps v
// warm, scaling the undone canary down. Neither creates a pod.
func (d *Deployment) promoteBySwitch(ctx context.Context, t, stable *appsv1.Deployment, v v1alpha1.VersionRef) (bool, error) {
	if stable == nil {
		return false, nil
	}
	canary, err := d.getCopy(ctx, d.plan.CanaryWorkload)
	if err != nil {
		return false, err
	}
	serving := servingRole(stable)
	switch {
	case runs(canary, v) && serving == RoleCanary:
		return true, d.followServing(ctx, t) // switched already
	case runs(canary, v):
		if !rolledOut(canary) {
			return false, fmt.Errorf("waiting for Deployment %s to roll out before the Services switch to it: %w",
				d.name(d.plan.CanaryWorkload), ErrNotReady)
		}
		d.log.Info("promotion: the Services switch to the canary copy; the stable copy keeps the previous version warm",
			"version", v.Version, "undoWindow", d.plan.UndoWindow)
		return true, d.switchServing(ctx, t, RoleCanary)
	case serving == RoleCanary && runs(stable, v):
		d.log.Info("undo: the Services switch back to the warm stable copy", "version", v.Version)
		if err := d.switchServing(ctx, t, RoleStable); err != nil {
			return false, err
		}
		if err := d.scaleToZero(ctx, d.plan.CanaryWorkload); err != nil {
			return false, fmt.Errorf("scale the undone canary down: %w", err)
		}
		return true, nil
	}
	return false, nil
}

// switchServing records on the stable copy which copy serves the stable
// version, then points the Services at it. The record comes first: a
// controller stopped in between finds it, and EnsureServices finishes the
// switch.
func (d *Deployment) switchServing(ctx context.Context, t *appsv1.Deployment, role string) error {
	err := d.modifyDeployment(ctx, d.plan.StableWorkload, func(dep *appsv1.Deployment) error {
		if role == RoleCanary {
			dep.Annotations = merged(dep.Annotations, map[string]string{
				AnnotationServing:      RoleCanary,
				AnnotationServingSince: d.clock.Now().UTC().Format(time.RFC3339),
			})
			return nil
		}
		delete(dep.Annotations, AnnotationServing)
		delete(dep.Annotations, AnnotationServingSince)
		return nil
	})
	if err != nil {
		return fmt.Errorf("switch the Services to the %s copy: %w", role, err)
	}
	return d.followServing(ctx, t)
}

// followServing points the Services and the autoscaler at the copies the
// stable copy's record names.
func (d *Deployment) followServing(ctx context.Context, t *appsv1.Deployment) error {
	if err := d.ensureServices(ctx, t); err != nil {
		return err
	}
	_, err := d.ensureHPA(ctx)
	return err
}

// RetireWarm stops keeping the previous version warm once the undo window
// of the last promotion has passed (see consolidate); it returns
// ErrNotReady while the stable copy rolls out the serving version. Before
// the window passes, and when nothing is kept warm, it does nothing.
func (d *Deployment) RetireWarm(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	stable, err := d.getCopy(ctx, d.plan.StableWorkload)
	if err != nil || servingRole(stable) != RoleCanary {
		return err
	}
	since, err := time.Parse(time.RFC3339, stable.Annotations[AnnotationServingSince])
	if err == nil && d.clock.Now().Before(since.Add(d.plan.UndoWindow)) {
		return nil
	}
	t, err := d.target(ctx)
	if err != nil {
		return err
	}
	_, err = d.consolidate(ctx, t, stable)
	return err
}

// consolidate moves the serving version from the canary copy back to the
// stable copy, ending the warm keeping of the previous version: the stable
// copy rolls out the canary copy's template (the Services still select
// the canary copy meanwhile, and ErrNotReady says so), then the Services
// and the autoscaler switch back and the canary copy is scaled down. It
// returns the stable copy as written.
func (d *Deployment) consolidate(ctx context.Context, t, stable *appsv1.Deployment) (*appsv1.Deployment, error) {
	canary, err := d.getCopy(ctx, d.plan.CanaryWorkload)
	if err != nil {
		return nil, err
	}
	if canary != nil {
		autoscaled, err := d.ensureHPA(ctx)
		if err != nil {
			return nil, err
		}
		// The stable copy takes over the serving copy's replicas when an
		// autoscaler sizes them, so the switch back drops no capacity.
		replicas := originalReplicas(t)
		if autoscaled {
			replicas = max(replicasOf(canary), 1)
		}
		stable, err = d.applyCopy(ctx, t, copySpec{
			name: d.plan.StableWorkload, role: RoleStable, template: &canary.Spec.Template,
			hash: canary.Annotations[AnnotationTemplateHash], replicas: replicas,
		})
		if err != nil {
			return nil, err
		}
		if !rolledOut(stable) {
			return nil, fmt.Errorf("waiting for Deployment %s to roll out the serving version before the canary copy is scaled down: %w",
				d.name(d.plan.StableWorkload), ErrNotReady)
		}
	}
	d.log.Info("the stable copy serves the promoted version again; the previous one is no longer warm")
	if err := d.switchServing(ctx, t, RoleStable); err != nil {
		return nil, err
	}
	if err := d.scaleToZero(ctx, d.plan.CanaryWorkload); err != nil {
		return nil, fmt.Errorf("scale the canary copy down: %w", err)
	}
	return d.getCopy(ctx, d.plan.StableWorkload)
}
