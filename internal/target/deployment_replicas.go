package target

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/kubewrite"
	"github.com/pipit-dev/pipit/internal/spec"
)

// How many replicas each copy runs: the split the replica router asks for,
// the target's replicas pipit remembers, and the stable copy's autoscaler.

// ScaleForWeight splits the target's replicas between the copies for the
// replica router, which has no traffic router to send w of the requests
// to the canary: the canary gets ceil(total × w), at least one while it
// runs, so it can become healthy at 0%; the stable copy the rest, at least
// one below 100%. A retired canary stays at zero. The weight is kept on
// the stable copy so DeployCanary sizes the next canary by it. An
// autoscaler owns the stable copy's replicas when the target has one. At
// 100% with an undo window both copies run the target's replicas: the
// promotion that follows switches the apex Service to the canary copy and
// keeps the stable copy warm at full size (see promoteBySwitch). Weights
// size nothing in a blue-green rollout, whose apex Service selects one
// copy, nor while the canary copy serves the stable version.
func (d *Deployment) ScaleForWeight(ctx context.Context, w v1alpha1.Percent) error {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	t, err := d.target(ctx)
	if err != nil {
		return err
	}
	autoscaled, err := d.ensureHPA(ctx)
	if err != nil {
		return err
	}
	stable, canary, err := d.copies(ctx)
	if err != nil {
		return err
	}
	sized := !d.plan.BlueGreen && servingRole(stable) == RoleStable
	live := sized && canary != nil && replicasOf(canary) > 0
	keepStable := !sized || autoscaled
	stableN, canaryN := splitReplicas(originalReplicas(t), w, live)
	if live && w >= v1alpha1.FullWeight && d.keepsWarm() {
		stableN = originalReplicas(t) // the previous version, kept warm by the promotion
	}
	scaleStable := func() error {
		return d.modifyDeployment(ctx, d.plan.StableWorkload, func(dep *appsv1.Deployment) error {
			dep.Annotations = merged(dep.Annotations, map[string]string{AnnotationWeight: w.String()})
			if !keepStable {
				dep.Spec.Replicas = &stableN
			}
			return nil
		})
	}
	scaleCanary := func() error {
		if !live {
			return nil
		}
		return d.modifyDeployment(ctx, d.plan.CanaryWorkload, func(dep *appsv1.Deployment) error {
			dep.Spec.Replicas = &canaryN
			return nil
		})
	}
	// Grow before shrinking, so the total never dips below the target's.
	steps := []func() error{scaleStable, scaleCanary}
	if live && canaryN > replicasOf(canary) {
		steps = []func() error{scaleCanary, scaleStable}
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return fmt.Errorf("scale for weight %s: %w", w, err)
		}
	}
	return nil
}

// copies reads the stable and the canary copy; nil for one that does not
// exist.
func (d *Deployment) copies(ctx context.Context) (stable, canary *appsv1.Deployment, err error) {
	if stable, err = d.getCopy(ctx, d.plan.StableWorkload); err != nil {
		return nil, nil, err
	}
	if canary, err = d.getCopy(ctx, d.plan.CanaryWorkload); err != nil {
		return nil, nil, err
	}
	return stable, canary, nil
}

// splitReplicas divides total replicas for weight w: the canary's share
// is ceil(total × w), at least one while the canary is live, the stable
// copy keeps the rest, at least one below 100%.
func splitReplicas(total int32, w v1alpha1.Percent, live bool) (stable, canary int32) {
	total = max(total, 1)
	if !live {
		return total, 0
	}
	w = min(max(w, 0), v1alpha1.FullWeight)
	share := int32((int64(total)*int64(w) + int64(v1alpha1.FullWeight) - 1) / int64(v1alpha1.FullWeight))
	stable = total - share
	if w < v1alpha1.FullWeight {
		stable = max(stable, 1)
	}
	return stable, max(share, 1)
}

// weight is the weight the replica router set last (0% before it set
// one), and whether the canary's replicas follow it: only with the
// replica router, and not in a blue-green rollout. A weight left by a
// replica router the rollout no longer uses does not count.
func (d *Deployment) weight(stable *appsv1.Deployment) (v1alpha1.Percent, bool) {
	if d.plan.Router != spec.RouterReplicas || d.plan.BlueGreen {
		return 0, false
	}
	s, ok := stable.Annotations[AnnotationWeight]
	if !ok {
		return 0, true
	}
	w, err := v1alpha1.ParsePercent(s)
	if err != nil {
		d.log.Warn("ignoring an unreadable weight annotation", "deployment", stable.Name, "value", s)
		return 0, true
	}
	return w, true
}

// ensureHPA gives the serving copy an autoscaler like the target's, when
// the target has one, and removes it when the target no longer has one.
// The autoscaler is named after the stable copy and scales it, or the
// canary copy while that one serves the stable version (see
// promoteBySwitch). It reports whether the serving copy is autoscaled.
func (d *Deployment) ensureHPA(ctx context.Context) (bool, error) {
	stable, err := d.getCopy(ctx, d.plan.StableWorkload)
	if err != nil {
		return false, err
	}
	scaled := d.plan.StableWorkload
	if servingRole(stable) == RoleCanary {
		scaled = d.plan.CanaryWorkload
	}
	var list autoscalingv2.HorizontalPodAutoscalerList
	if err := d.c.List(ctx, &list, client.InNamespace(d.plan.Namespace)); err != nil {
		return false, fmt.Errorf("list HorizontalPodAutoscalers in %s: %w", d.plan.Namespace, err)
	}
	var user, mine *autoscalingv2.HorizontalPodAutoscaler
	for i := range list.Items {
		h := &list.Items[i]
		switch {
		case h.Name == d.plan.StableWorkload && d.ours(h):
			mine = h
		case scalesDeployment(h, d.plan.Target):
			user = h
		}
	}
	if user == nil {
		if mine != nil {
			if err := kubewrite.DeleteIfPresent(ctx, d.c, mine); err != nil {
				return false, fmt.Errorf("delete HorizontalPodAutoscaler %s: %w", d.name(mine.Name), err)
			}
			d.log.Info("the target is no longer autoscaled; removed the stable copy's autoscaler")
		}
		return false, nil
	}
	fresh := &autoscalingv2.HorizontalPodAutoscaler{ObjectMeta: d.meta(d.plan.StableWorkload)}
	_, _, err = kubewrite.CreateOrUpdate(ctx, d.c, fresh, func(h *autoscalingv2.HorizontalPodAutoscaler) error {
		if h.ResourceVersion != "" && !d.ours(h) {
			return fmt.Errorf("it exists and is not managed by rollout %s", d.owner.Name)
		}
		h.Labels = merged(h.Labels, d.labels())
		if err := controllerutil.SetControllerReference(d.owner, h, ownerScheme); err != nil {
			return err
		}
		h.Spec = *user.Spec.DeepCopy()
		h.Spec.ScaleTargetRef = autoscalingv2.CrossVersionObjectReference{
			APIVersion: appsv1.SchemeGroupVersion.String(), Kind: "Deployment", Name: scaled,
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("write HorizontalPodAutoscaler %s: %w", d.name(d.plan.StableWorkload), err)
	}
	return true, nil
}

// scalesDeployment reports whether h scales the Deployment name.
func scalesDeployment(h *autoscalingv2.HorizontalPodAutoscaler, name string) bool {
	ref := h.Spec.ScaleTargetRef
	group, _, _ := strings.Cut(ref.APIVersion, "/")
	return ref.Kind == "Deployment" && ref.Name == name && (ref.APIVersion == "" || group == appsv1.GroupName)
}

// replicasOf is a Deployment's desired replicas (the API's default is 1).
func replicasOf(dep *appsv1.Deployment) int32 {
	if dep.Spec.Replicas == nil {
		return 1
	}
	return *dep.Spec.Replicas
}

// rememberedReplicas reads the replicas pipit took from the target.
func rememberedReplicas(t *appsv1.Deployment) (int32, bool) {
	s, ok := t.Annotations[AnnotationOriginalReplicas]
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 32)
	if err != nil || n < 0 {
		return 0, false
	}
	return int32(n), true
}

// originalReplicas is how many replicas the service runs: the target's
// before pipit held it at zero, at least one.
func originalReplicas(t *appsv1.Deployment) int32 {
	if n, ok := rememberedReplicas(t); ok {
		return max(n, 1)
	}
	return max(replicasOf(t), 1)
}
