package kube

import (
	"context"
	"fmt"
	"reflect"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/spec"
)

// templateIndex indexes Rollouts by the templates their metrics
// reference, as templateIndexKey writes them.
const templateIndex = "spec.analysis.metrics.templateRef"

// templateIndexKey is how templateIndex names a template: its kind and
// name (a namespaced one is looked for in the Rollout's namespace).
func templateIndexKey(kind, name string) string { return kind + "/" + name }

// templateKeys lists the index keys of a Rollout's templateRefs.
func templateKeys(o client.Object) []string {
	var keys []string
	for _, ref := range spec.TemplateRefs(o.(*v1alpha1.Rollout)) {
		keys = append(keys, templateIndexKey(ref.Kind, ref.Name))
	}
	return keys
}

// rolloutsOfTemplate maps a template to the Rollouts whose metrics
// reference it, so that a changed template takes effect at their next
// check and a created one unblocks them: those of its namespace for a
// RolloutMetricTemplate, of every namespace for a cluster one.
func (rc *Reconciler) rolloutsOfTemplate(ctx context.Context, o client.Object) []reconcile.Request {
	kind, opts := v1alpha1.KindClusterMetricTemplate, []client.ListOption{}
	if _, ok := o.(*v1alpha1.RolloutMetricTemplate); ok {
		kind, opts = v1alpha1.KindMetricTemplate, append(opts, client.InNamespace(o.GetNamespace()))
	}
	var list v1alpha1.RolloutList
	opts = append(opts, client.MatchingFields{templateIndex: templateIndexKey(kind, o.GetName())})
	if err := rc.Client.List(ctx, &list, opts...); err != nil {
		rc.log().Warn("listing the rollouts of a metric template", "kind", kind, "template", o.GetName(), "err", err)
		return nil
	}
	out := make([]reconcile.Request, 0, len(list.Items))
	for _, r := range list.Items {
		out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: r.Namespace, Name: r.Name}})
	}
	return out
}

// withTemplates returns r with its templated metrics expanded from the
// templates in the API (see spec.ExpandTemplates), or the problems that
// keep it from running: a template missing or invalid, an argument. err
// is a failure to read the templates.
func (rc *Reconciler) withTemplates(ctx context.Context, r *v1alpha1.Rollout) (*v1alpha1.Rollout, spec.Errors, error) {
	refs := spec.TemplateRefs(r)
	if len(refs) == 0 {
		return r, nil, nil
	}
	set := spec.NewTemplateSet("in the cluster")
	var problems spec.Errors
	for _, ref := range refs {
		t, err := rc.template(ctx, ref, r.Namespace)
		if apierrors.IsNotFound(err) {
			continue // reported by the expansion
		}
		if err != nil {
			return nil, nil, fmt.Errorf("reading %s %s: %w", ref.Kind, ref.Name, err)
		}
		if errs := spec.ValidateTemplate(t); len(errs) > 0 {
			problems = append(problems, &spec.FieldError{Reason: fmt.Sprintf("%s %s is invalid: %v", ref.Kind, ref.Name, errs)})
			continue
		}
		set.Add(ref.Kind, r.Namespace, ref.Name, &t.Spec)
	}
	out, errs := spec.ExpandTemplates(r, set)
	return out, append(problems, errs...), nil
}

// template reads the template ref names, of either kind, into the shape
// spec.ValidateTemplate checks.
func (rc *Reconciler) template(ctx context.Context, ref v1alpha1.MetricTemplateRef, namespace string) (*v1alpha1.RolloutMetricTemplate, error) {
	t := &v1alpha1.RolloutMetricTemplate{}
	if ref.Kind == v1alpha1.KindClusterMetricTemplate {
		var ct v1alpha1.ClusterRolloutMetricTemplate
		if err := rc.Client.Get(ctx, types.NamespacedName{Name: ref.Name}, &ct); err != nil {
			return nil, err
		}
		t.ObjectMeta, t.Spec = ct.ObjectMeta, ct.Spec
	} else if err := rc.Client.Get(ctx, types.NamespacedName{Namespace: namespace, Name: ref.Name}, t); err != nil {
		return nil, err
	}
	// The API server's objects carry no apiVersion and kind in a typed
	// client's answer.
	t.APIVersion, t.Kind = v1alpha1.APIVersion, ref.Kind
	return t, nil
}

// measured is what a rollout measures once its templates are expanded: a
// runner built for other values is rebuilt, as for a new generation.
type measured struct {
	analysis      *v1alpha1.AnalysisSpec
	postPromotion *v1alpha1.PostPromotionSpec
}

func measuredOf(r *v1alpha1.Rollout) measured {
	return measured{analysis: r.Spec.Analysis, postPromotion: r.Spec.PostPromotion}
}

func (m measured) equal(o measured) bool { return reflect.DeepEqual(m, o) }
