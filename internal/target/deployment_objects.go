package target

import (
	"context"
	"fmt"
	"maps"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/kubewrite"
)

// Reading and writing the objects the Deployment target manages: the
// target, the copies, their names, labels and owner.

// ownerScheme maps the Rollout type to its group, version and kind for
// owner references.
var ownerScheme = func() *kruntime.Scheme {
	s := kruntime.NewScheme()
	utilruntime.Must(v1alpha1.AddToScheme(s))
	return s
}()

// target reads the user's Deployment.
func (d *Deployment) target(ctx context.Context) (*appsv1.Deployment, error) {
	var t appsv1.Deployment
	err := d.c.Get(ctx, d.key(d.plan.Target), &t)
	if apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("%w: %s", ErrTargetNotFound, d.name(d.plan.Target))
	}
	if err != nil {
		return nil, fmt.Errorf("get Deployment %s: %w", d.name(d.plan.Target), err)
	}
	return &t, nil
}

// getCopy reads one of the copies; nil when it does not exist.
func (d *Deployment) getCopy(ctx context.Context, name string) (*appsv1.Deployment, error) {
	var dep appsv1.Deployment
	err := d.c.Get(ctx, d.key(name), &dep)
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get Deployment %s: %w", d.name(name), err)
	}
	return &dep, nil
}

// modifyDeployment applies change to a Deployment and writes it back when
// it changed, retrying on conflicts. A missing Deployment's error is
// NotFound (see apierrors.IsNotFound).
func (d *Deployment) modifyDeployment(ctx context.Context, name string, change func(*appsv1.Deployment) error) error {
	_, _, err := kubewrite.Update(ctx, d.c, &appsv1.Deployment{ObjectMeta: d.meta(name)}, change)
	if err != nil {
		return fmt.Errorf("Deployment %s: %w", d.name(name), err)
	}
	return nil
}

// ours reports whether pipit manages obj for this rollout.
func (d *Deployment) ours(obj metav1.Object) bool {
	l := obj.GetLabels()
	return l[LabelManagedBy] == ManagedBy && l[LabelRollout] == d.owner.Name
}

// labels are the labels of everything pipit creates for the rollout.
func (d *Deployment) labels() map[string]string {
	return map[string]string{LabelManagedBy: ManagedBy, LabelRollout: d.owner.Name}
}

// meta names an object of the rollout's namespace, for creating it.
func (d *Deployment) meta(name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, Namespace: d.plan.Namespace}
}

// key names an object of the rollout's namespace, for reading it.
func (d *Deployment) key(name string) types.NamespacedName {
	return types.NamespacedName{Namespace: d.plan.Namespace, Name: name}
}

// name is an object's namespace/name, for errors.
func (d *Deployment) name(name string) string { return d.plan.Namespace + "/" + name }

// merged returns dst with every later map's entries set on it, later ones
// winning; dst may be nil.
func merged(dst map[string]string, srcs ...map[string]string) map[string]string {
	if dst == nil {
		dst = map[string]string{}
	}
	for _, s := range srcs {
		maps.Copy(dst, s)
	}
	return dst
}
