package spec

import (
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"

	"github.com/pipit-dev/pipit/api/v1alpha1"
)

// flagNamePattern is what a flag's key and its variants' names may be:
// they travel in URL paths (/ofrep/v1/evaluate/flags/KEY) and stand for
// versions on the command line, so they are plain words.
var flagNamePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// flagNameRule is flagNamePattern told to a person.
const flagNameRule = "use 1 to 128 letters, digits, '.', '_' and '-', starting with a letter or digit"

// FlagValueKind is the OpenFeature type of a variant's JSON value:
// boolean, string, number or object, or "" when it is none of them.
func FlagValueKind(raw []byte) string {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return ""
	}
	switch v.(type) {
	case bool:
		return "boolean"
	case string:
		return "string"
	case float64:
		return "number"
	case map[string]any:
		return "object"
	}
	return ""
}

// flag checks a flag rollout: its names, variants of one type, and the
// parts of a rollout that only a service has.
func (v *validator) flag(s *v1alpha1.RolloutSpec) {
	const p = "spec.flag"
	f := s.Flag
	switch {
	case f.Key == "":
		v.add(p+".key", "is required: the key applications evaluate, such as new-checkout")
	case !flagNamePattern.MatchString(f.Key):
		v.add(p+".key", "%q is not a flag key: %s", clip(f.Key), flagNameRule)
	}
	v.flagVariants(f)
	for i, r := range f.Rules {
		v.flagRule(fmt.Sprintf("%s.rules[%d]", p, i), &r)
	}
	if s.Kubernetes != nil {
		v.add("spec.kubernetes", "is for rollouts with a targetRef (Kubernetes runtime), not flags")
	}
	if a := s.Analysis; a != nil {
		for i, m := range a.Metrics {
			if isBuiltin(m) && (m.Name == MetricCPUUsage || m.Name == MetricMemoryUsage) {
				v.add(fmt.Sprintf("spec.analysis.metrics[%d].name", i), "%s is measured on processes pipit runs; a flag has none", m.Name)
			}
		}
	}
	if s.Strategy.BlueGreen != nil {
		v.add("spec.strategy.blueGreen", "has no meaning for a flag: a flag has no preview; roll it out in steps")
	}
}

// flagVariants checks the variants and the two that play the stable's
// and the canary's parts.
func (v *validator) flagVariants(f *v1alpha1.FlagSpec) {
	const p = "spec.flag"
	if len(f.Variants) == 0 {
		v.add(p+".variants", "is required: each variant's name and value, such as {on: true, off: false}")
	}
	var firstKind, firstName string
	for _, name := range slices.Sorted(maps.Keys(f.Variants)) {
		q := index(p+".variants", clip(name))
		if !flagNamePattern.MatchString(name) {
			v.add(q, "%q is not a variant name: %s", clip(name), flagNameRule)
		}
		kind := FlagValueKind(f.Variants[name].Raw)
		if kind == "" {
			v.add(q, "must be a boolean, a string, a number or an object")
			continue
		}
		switch {
		case firstKind == "":
			firstKind, firstName = kind, name
		case kind != firstKind:
			v.add(q, "is a %s and variant %q a %s: an application evaluates a flag as one type", kind, clip(firstName), firstKind)
		}
	}
	v.variantName(p+".defaultVariant", f.DefaultVariant, f, true)
	v.variantName(p+".rolloutVariant", f.RolloutVariant, f, false)
	if f.RolloutVariant != "" && f.RolloutVariant == f.DefaultVariant {
		v.add(p+".rolloutVariant", "is the defaultVariant too; roll out another variant")
	}
}

// variantName checks that name is one of f's variants.
func (v *validator) variantName(p, name string, f *v1alpha1.FlagSpec, required bool) {
	if len(f.Variants) == 0 {
		return // reported once, on variants
	}
	if name == "" {
		if required {
			v.add(p, "is required: the variant every user gets before the rollout")
		}
		return
	}
	if _, ok := f.Variants[name]; !ok {
		v.add(p, "%q is not one of the variants (%s)", clip(name), strings.Join(slices.Sorted(maps.Keys(f.Variants)), ", "))
	}
}

// flagRule checks a rule as a traffic rule is checked, on attributes.
func (v *validator) flagRule(p string, r *v1alpha1.FlagRule) {
	switch r.To {
	case v1alpha1.DestinationCanary, v1alpha1.DestinationStable:
	case "":
		v.add(p+".to", "is required: canary (the variant rolled out) or stable (the current one)")
	default:
		v.add(p+".to", "must be canary or stable, not %q", clip(string(r.To)))
	}
	if len(r.Attributes) == 0 {
		v.add(p+".attributes", "is required: the evaluation-context attributes the rule matches, such as {plan: {in: [beta]}}")
	}
	for _, name := range slices.Sorted(maps.Keys(r.Attributes)) {
		q := index(p+".attributes", clip(name))
		if name == "" {
			v.add(q, "an attribute needs a name")
		}
		v.stringMatch(q, r.Attributes[name], true)
		if r.Attributes[name].InFile != "" {
			v.add(q+".inFile", "is not read for flags yet; list the values with in")
		}
	}
}

// checkFlagCanary reports why v cannot be rolled out as a variant of f.
func checkFlagCanary(f *v1alpha1.FlagSpec, v v1alpha1.VersionRef) error {
	if v.URL != "" || v.URLs != nil || v.Process != nil {
		return fmt.Errorf("flag %s rolls out variants: deploy one with --version VARIANT, not a URL or a process", f.Key)
	}
	if _, ok := f.Variants[v.Version]; !ok {
		return fmt.Errorf("flag %s has no variant %q; its variants are %s", f.Key, clip(v.Version), strings.Join(slices.Sorted(maps.Keys(f.Variants)), ", "))
	}
	return nil
}
