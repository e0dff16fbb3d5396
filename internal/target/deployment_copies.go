package target

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/kubewrite"
)

// The stable and canary copies of the user's Deployment: a version's
// identity (its pod template's hash), where its template is found again, and
// the fields of a copy pipit owns.

// skippedAnnotations are the target's annotations not carried over to the
// copies: they describe the target object itself.
var skippedAnnotations = map[string]bool{
	corev1.LastAppliedConfigAnnotation:  true,
	"deployment.kubernetes.io/revision": true,
}

// TemplateHash identifies a pod template: a short hash of its JSON form,
// ignoring the role label pipit adds to the copies and the
// pod-template-hash label the Deployment controller adds to ReplicaSets,
// so a copy's template hashes like the target's it came from.
func TemplateHash(t *corev1.PodTemplateSpec) string {
	c := t.DeepCopy()
	delete(c.Labels, LabelRole)
	delete(c.Labels, appsv1.DefaultDeploymentUniqueLabelKey)
	if len(c.Labels) == 0 {
		c.Labels = nil
	}
	// A pod template is plain data: it always marshals, with map keys
	// sorted, so equal templates give equal bytes.
	raw, _ := json.Marshal(c)
	h := fnv.New64a()
	h.Write(raw)
	return fmt.Sprintf("%016x", h.Sum64())[:10]
}

// versionOf names a pod template: its images for people, its hash as the
// identity.
func versionOf(t *corev1.PodTemplateSpec) v1alpha1.VersionRef {
	images := make([]string, len(t.Spec.Containers))
	for i, c := range t.Spec.Containers {
		images[i] = c.Image
	}
	return v1alpha1.VersionRef{Version: strings.Join(images, ","), Template: TemplateHash(t)}
}

// applyStable makes the stable copy run tmpl, v's template, at the
// target's replicas; with keepReplicas an existing copy keeps its own, as
// an autoscaler sizes it.
func (d *Deployment) applyStable(ctx context.Context, t *appsv1.Deployment, tmpl *corev1.PodTemplateSpec,
	v v1alpha1.VersionRef, keepReplicas bool) (*appsv1.Deployment, error) {
	return d.applyCopy(ctx, t, copySpec{
		name: d.plan.StableWorkload, role: RoleStable, template: tmpl, hash: v.Template,
		replicas: originalReplicas(t), keepReplicas: keepReplicas,
	})
}

// copySpec is the desired state of one copy.
type copySpec struct {
	name, role string
	template   *corev1.PodTemplateSpec
	hash       string
	replicas   int32
	// keepReplicas leaves an existing copy's replicas alone: an autoscaler
	// or the replica router sizes it.
	keepReplicas bool
}

// applyCopy creates or updates a copy of the target t and returns it as
// written.
func (d *Deployment) applyCopy(ctx context.Context, t *appsv1.Deployment, cs copySpec) (*appsv1.Deployment, error) {
	out, _, err := kubewrite.CreateOrUpdate(ctx, d.c, &appsv1.Deployment{ObjectMeta: d.meta(cs.name)}, func(dep *appsv1.Deployment) error {
		return d.shapeCopy(dep, t, cs)
	})
	if err != nil {
		return nil, fmt.Errorf("write Deployment %s: %w", d.name(cs.name), err)
	}
	return out, nil
}

// shapeCopy sets the fields of a copy that pipit owns; the ones it does
// not set (the revision annotation, status) stay as they are.
func (d *Deployment) shapeCopy(dep, t *appsv1.Deployment, cs copySpec) error {
	exists := dep.ResourceVersion != ""
	if exists && !d.ours(dep) {
		return fmt.Errorf("it exists and is not managed by rollout %s: rename it, or name the copies in spec.kubernetes", d.owner.Name)
	}
	dep.Labels = merged(dep.Labels, t.Labels, d.labels())
	dep.Annotations = merged(dep.Annotations, carriedAnnotations(t.Annotations),
		map[string]string{AnnotationTemplateHash: cs.hash})
	if err := controllerutil.SetControllerReference(d.owner, dep, ownerScheme); err != nil {
		return err
	}
	sel, err := roleSelector(t.Spec.Selector, cs.role)
	if err != nil {
		return err
	}
	switch {
	case dep.Spec.Selector == nil:
		dep.Spec.Selector = sel
	case !equality.Semantic.DeepEqual(dep.Spec.Selector, sel):
		return fmt.Errorf("its selector %v differs from the target's plus role %s, and selectors cannot change: delete it",
			metav1.FormatLabelSelector(dep.Spec.Selector), cs.role)
	}
	tmpl := cs.template.DeepCopy()
	delete(tmpl.Labels, appsv1.DefaultDeploymentUniqueLabelKey)
	tmpl.Labels = merged(tmpl.Labels, map[string]string{LabelRole: cs.role})
	dep.Spec.Template = *tmpl
	if !exists || !cs.keepReplicas {
		dep.Spec.Replicas = new(cs.replicas)
	}
	dep.Spec.Strategy = *t.Spec.Strategy.DeepCopy()
	dep.Spec.MinReadySeconds = t.Spec.MinReadySeconds
	dep.Spec.RevisionHistoryLimit = t.Spec.RevisionHistoryLimit
	dep.Spec.ProgressDeadlineSeconds = t.Spec.ProgressDeadlineSeconds
	dep.Spec.Paused = false
	return nil
}

// roleSelector is the target's selector narrowed to one role.
func roleSelector(s *metav1.LabelSelector, role string) (*metav1.LabelSelector, error) {
	if s == nil || len(s.MatchLabels) == 0 {
		return nil, errors.New("the target's selector has no matchLabels, which the Services need to select its pods")
	}
	out := s.DeepCopy()
	out.MatchLabels[LabelRole] = role
	return out, nil
}

// templateOf finds the pod template whose hash is hash: the target's, a
// copy's, or one a copy or the target ran before (kept in its
// ReplicaSets). That is how an undo finds the previous stable version,
// and how a first install finds the template it decided on when the
// target's changed again before the stable copy was made (a controller
// killed in between).
func (d *Deployment) templateOf(ctx context.Context, t *appsv1.Deployment, hash string) (*corev1.PodTemplateSpec, error) {
	if TemplateHash(&t.Spec.Template) == hash {
		return &t.Spec.Template, nil
	}
	for _, name := range []string{d.plan.CanaryWorkload, d.plan.StableWorkload} {
		dep, err := d.getCopy(ctx, name)
		if err != nil {
			return nil, err
		}
		if dep != nil && dep.Annotations[AnnotationTemplateHash] == hash {
			return &dep.Spec.Template, nil
		}
	}
	var sets appsv1.ReplicaSetList
	if err := d.c.List(ctx, &sets, client.InNamespace(d.plan.Namespace), client.MatchingLabels(t.Spec.Selector.MatchLabels)); err != nil {
		return nil, fmt.Errorf("list ReplicaSets in %s: %w", d.plan.Namespace, err)
	}
	for i := range sets.Items {
		rs := &sets.Items[i]
		owner := metav1.GetControllerOf(rs)
		if owner == nil || owner.Kind != "Deployment" ||
			(owner.Name != d.plan.StableWorkload && owner.Name != d.plan.CanaryWorkload && owner.Name != d.plan.Target) {
			continue
		}
		if TemplateHash(&rs.Spec.Template) == hash {
			return &rs.Spec.Template, nil
		}
	}
	return nil, fmt.Errorf("pod template %s is gone: the target's template changed again (it is now %s), so roll that one out instead",
		hash, TemplateHash(&t.Spec.Template))
}

// carriedAnnotations are the target's annotations a copy takes over, so
// dashboards and tools that read them keep working.
func carriedAnnotations(a map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range a {
		if !skippedAnnotations[k] && !strings.HasPrefix(k, "pipit.dev/") {
			out[k] = v
		}
	}
	return out
}
