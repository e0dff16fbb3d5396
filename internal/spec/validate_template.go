package spec

import (
	"maps"
	"slices"

	"github.com/pipit-dev/pipit/api/v1alpha1"
)

// templateRef checks a metric measured by a template: the reference
// itself. Whether the template exists, and the arguments, are checked
// when it is expanded (ExpandTemplates), where the templates are known.
func (v *validator) templateRef(p string, m *v1alpha1.MetricSpec) {
	ref := m.TemplateRef
	if m.Provider != nil {
		v.add(p+".provider", "set provider or templateRef, not both: a templated metric takes the template's provider")
	}
	if ref.Name == "" {
		v.add(p+".templateRef.name", "is required: the name of a %s or %s", v1alpha1.KindMetricTemplate, v1alpha1.KindClusterMetricTemplate)
	} else {
		v.dnsLabel(p+".templateRef.name", ref.Name)
	}
	if ref.Kind != "" && !isTemplateKind(ref.Kind) {
		v.add(p+".templateRef.kind", "must be %s (default) or %s, not %q", v1alpha1.KindMetricTemplate, v1alpha1.KindClusterMetricTemplate, clip(ref.Kind))
	}
}

// ValidateTemplate checks a metric template, of either kind: both are
// read into a RolloutMetricTemplate, whose Kind tells them apart. It
// returns every problem, each naming its field path.
func ValidateTemplate(t *v1alpha1.RolloutMetricTemplate) Errors {
	var v validator
	v.apiVersion(t.APIVersion)
	if !isTemplateKind(t.Kind) {
		v.add("kind", "must be %s or %s, not %q", v1alpha1.KindMetricTemplate, v1alpha1.KindClusterMetricTemplate, clip(t.Kind))
	}
	if t.Name == "" {
		v.add("metadata.name", "is required")
	} else {
		v.dnsLabel("metadata.name", t.Name)
	}
	switch {
	case t.Namespace != "" && t.Kind == v1alpha1.KindClusterMetricTemplate:
		v.add("metadata.namespace", "is not set on a %s: every namespace can use it", v1alpha1.KindClusterMetricTemplate)
	case t.Namespace != "":
		v.dnsLabel("metadata.namespace", t.Namespace)
	}
	s := &t.Spec
	v.provider("spec.provider", &s.Provider)
	if used, all, err := argsUsed(&s.Provider); err != nil {
		v.add("spec.provider", "holds a template that does not parse: %v", err)
	} else {
		for _, name := range slices.Sorted(maps.Keys(s.Args)) {
			if !all && !used[name] {
				v.add(index("spec.args", name), "the provider's templates do not use {{ .Args.%s }}; %s", clip(name), usesArgs(used))
			}
		}
	}
	if s.ThresholdRange != nil {
		v.threshold("spec.thresholdRange", t.Name, unitCount, false, s.ThresholdRange)
	}
	v.condition("spec.successCondition", s.SuccessCondition)
	v.condition("spec.failureCondition", s.FailureCondition)
	v.unitField("spec.unit", &v1alpha1.MetricSpec{Provider: &s.Provider, Unit: s.Unit})
	return v.errs
}
