package spec

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"text/template"
	"text/template/parse"

	"github.com/pipit-dev/pipit/api/v1alpha1"
)

// TemplateKind returns the kind a templateRef names, with its default
// (the namespaced RolloutMetricTemplate) applied.
func TemplateKind(ref *v1alpha1.MetricTemplateRef) string {
	if ref.Kind == "" {
		return v1alpha1.KindMetricTemplate
	}
	return ref.Kind
}

// isBuiltin reports whether m names a built-in metric: one measured by
// neither a provider nor a template's (the provider is filled in only
// once the template is expanded).
func isBuiltin(m v1alpha1.MetricSpec) bool { return m.Provider == nil && m.TemplateRef == nil }

// isTemplateKind reports whether kind is one of the metric template kinds.
func isTemplateKind(kind string) bool {
	return kind == v1alpha1.KindMetricTemplate || kind == v1alpha1.KindClusterMetricTemplate
}

// templateKey identifies a template: cluster-scoped ones have no
// namespace.
type templateKey struct{ kind, namespace, name string }

func keyOf(kind, namespace, name string) templateKey {
	switch {
	case kind == v1alpha1.KindClusterMetricTemplate:
		namespace = ""
	case namespace == "":
		// A rollout file's namespace defaults as kubectl's does.
		namespace = "default"
	}
	return templateKey{kind, namespace, name}
}

func (k templateKey) String() string {
	if k.namespace == "" {
		return fmt.Sprintf("%s %q", k.kind, k.name)
	}
	return fmt.Sprintf("%s %q in namespace %q", k.kind, k.name, k.namespace)
}

// TemplateSet holds the metric templates that rollouts' templateRefs are
// resolved from: those of the files given beside the rollouts, or those
// the Kubernetes controller read from the API.
type TemplateSet struct {
	specs map[templateKey]*v1alpha1.MetricTemplateSpec
	// where says where templates are looked for, for the message about
	// a missing one.
	where string
}

// NewTemplateSet returns an empty set; where completes the message about
// a template that is not in it, such as "in the files given".
func NewTemplateSet(where string) *TemplateSet {
	return &TemplateSet{specs: map[templateKey]*v1alpha1.MetricTemplateSpec{}, where: where}
}

// Add puts a template in the set, in place of one of the same kind and
// name; namespace is ignored for the cluster kind.
func (s *TemplateSet) Add(kind, namespace, name string, spec *v1alpha1.MetricTemplateSpec) {
	s.specs[keyOf(kind, namespace, name)] = spec
}

// TemplateRefs lists the templateRefs of a rollout's metrics, so that a
// caller can fetch them into a TemplateSet.
func TemplateRefs(r *v1alpha1.Rollout) []v1alpha1.MetricTemplateRef {
	var refs []v1alpha1.MetricTemplateRef
	for _, list := range metricLists(&r.Spec) {
		for _, m := range list.metrics {
			if m.TemplateRef != nil {
				ref := *m.TemplateRef
				ref.Kind = TemplateKind(&ref)
				refs = append(refs, ref)
			}
		}
	}
	return refs
}

// metricList is a rollout's list of metrics with its field path.
type metricList struct {
	path    string
	metrics []v1alpha1.MetricSpec
}

func metricLists(s *v1alpha1.RolloutSpec) []metricList {
	var out []metricList
	if s.Analysis != nil {
		out = append(out, metricList{"spec.analysis.metrics", s.Analysis.Metrics})
	}
	if s.PostPromotion != nil {
		out = append(out, metricList{"spec.postPromotion.metrics", s.PostPromotion.Metrics})
	}
	return out
}

// ExpandTemplates returns r with every metric that has a templateRef
// measured by its template's provider instead: the template's
// thresholds, conditions, unit and argument defaults fill in what the
// metric leaves out, and the metric's own win. r itself is returned when
// it references no template, and a copy otherwise, so the engine never
// sees templates. The problems name the metric's field: a template that
// is not in set, an argument the template does not use, and one it uses
// without a value.
func ExpandTemplates(r *v1alpha1.Rollout, set *TemplateSet) (*v1alpha1.Rollout, Errors) {
	if len(TemplateRefs(r)) == 0 {
		return r, nil
	}
	out := r.DeepCopy()
	var errs Errors
	for _, list := range metricLists(&out.Spec) {
		for i := range list.metrics {
			m := &list.metrics[i]
			if m.TemplateRef != nil {
				errs = append(errs, set.expand(fmt.Sprintf("%s[%d]", list.path, i), m, r.Namespace)...)
			}
		}
	}
	return out, errs
}

// expand fills m in from its template.
func (s *TemplateSet) expand(p string, m *v1alpha1.MetricSpec, namespace string) Errors {
	k := keyOf(TemplateKind(m.TemplateRef), namespace, m.TemplateRef.Name)
	t, ok := s.specs[k]
	if !ok {
		return Errors{{Field: p + ".templateRef.name", Reason: fmt.Sprintf("there is no %s %s", k, s.where)}}
	}
	errs := checkArgs(p+".args", &t.Provider, m.Args, t.Args)
	args := maps.Clone(t.Args)
	if args == nil {
		args = map[string]string{}
	}
	maps.Copy(args, m.Args)
	if len(args) == 0 {
		args = nil
	}
	m.Provider, m.TemplateRef, m.Args = t.Provider.DeepCopy(), nil, args
	if m.ThresholdRange == nil && t.ThresholdRange != nil {
		m.ThresholdRange = t.ThresholdRange.DeepCopy()
	}
	m.SuccessCondition = cmpOr(m.SuccessCondition, t.SuccessCondition)
	m.FailureCondition = cmpOr(m.FailureCondition, t.FailureCondition)
	m.Unit = cmpOr(m.Unit, t.Unit)
	return errs
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// checkArgs checks the arguments given at p (a metric's args) against
// those the provider's templates use: every one given must be used, and
// every one used must be given or have a default.
func checkArgs(p string, prov *v1alpha1.MetricProvider, given, defaults map[string]string) Errors {
	used, all, err := argsUsed(prov)
	if err != nil {
		return nil // the provider's own check reports it
	}
	var errs Errors
	for _, name := range slices.Sorted(maps.Keys(given)) {
		if !all && !used[name] {
			errs = append(errs, &FieldError{Field: index(p, name),
				Reason: "unknown argument: the provider's templates do not use {{ .Args." + clip(name) + " }}; " + usesArgs(used)})
		}
	}
	for _, name := range slices.Sorted(maps.Keys(used)) {
		_, g := given[name]
		_, d := defaults[name]
		if !g && !d {
			errs = append(errs, &FieldError{Field: p,
				Reason: fmt.Sprintf("has no value for argument %q, which the provider's templates use as {{ .Args.%s }}", name, name)})
		}
	}
	return errs
}

func usesArgs(used map[string]bool) string {
	if len(used) == 0 {
		return "they use no argument"
	}
	return "they use " + strings.Join(slices.Sorted(maps.Keys(used)), ", ")
}

// argsUsed finds the arguments a provider's templates use as
// {{ .Args.NAME }}; all is true when one uses .Args as a whole (such as
// with index), so that which are used cannot be told.
func argsUsed(prov *v1alpha1.MetricProvider) (used map[string]bool, all bool, err error) {
	var texts []string
	if pr := prov.Prometheus; pr != nil {
		texts = append(texts, pr.Query)
	}
	if w := prov.Web; w != nil {
		texts = append(texts, w.URL, w.Body)
	}
	used = map[string]bool{}
	for _, text := range texts {
		t, err := template.New("").Parse(text)
		if err != nil {
			return nil, false, err
		}
		for _, tt := range t.Templates() {
			if tt.Tree != nil {
				all = walkArgs(tt.Tree.Root, used) || all
			}
		}
	}
	return used, all, nil
}

// walkArgs adds the argument names n uses to used, and reports whether
// it uses .Args as a whole.
func walkArgs(n parse.Node, used map[string]bool) (all bool) {
	var idents []string
	var children []parse.Node
	switch n := n.(type) {
	case *parse.FieldNode:
		idents = n.Ident
	case *parse.VariableNode:
		if len(n.Ident) > 0 && n.Ident[0] == "$" {
			idents = n.Ident[1:]
		}
	case *parse.ChainNode:
		children = []parse.Node{n.Node}
	case *parse.ListNode:
		if n != nil {
			children = n.Nodes
		}
	case *parse.ActionNode:
		children = []parse.Node{n.Pipe}
	case *parse.PipeNode:
		if n != nil {
			for _, c := range n.Cmds {
				children = append(children, c)
			}
		}
	case *parse.CommandNode:
		if name, ok := indexedArg(n); ok {
			used[name] = true
			return false
		}
		children = n.Args
	case *parse.IfNode:
		children = []parse.Node{n.Pipe, n.List, n.ElseList}
	case *parse.RangeNode:
		children = []parse.Node{n.Pipe, n.List, n.ElseList}
	case *parse.WithNode:
		children = []parse.Node{n.Pipe, n.List, n.ElseList}
	case *parse.TemplateNode:
		children = []parse.Node{n.Pipe}
	}
	if len(idents) > 0 && idents[0] == "Args" {
		if len(idents) == 1 {
			return true
		}
		used[idents[1]] = true
	}
	for _, c := range children {
		if c != nil {
			all = walkArgs(c, used) || all
		}
	}
	return all
}

// indexedArg recognises {{ index .Args "NAME" }}, how a template names an
// argument whose name is not an identifier (such as service-name).
func indexedArg(n *parse.CommandNode) (string, bool) {
	if len(n.Args) != 3 {
		return "", false
	}
	fn, ok := n.Args[0].(*parse.IdentifierNode)
	field, ok2 := n.Args[1].(*parse.FieldNode)
	key, ok3 := n.Args[2].(*parse.StringNode)
	if !ok || !ok2 || !ok3 || fn.Ident != "index" || len(field.Ident) != 1 || field.Ident[0] != "Args" {
		return "", false
	}
	return key.Text, true
}

// ArgRef is how a provider's template names the argument name: as
// {{ .Args.NAME }} when name is an identifier, else with index.
func ArgRef(name string) string {
	if identifier.MatchString(name) {
		return "{{ .Args." + name + " }}"
	}
	return fmt.Sprintf("{{ index .Args %q }}", name)
}

// identifier is a name a template can write after a dot.
var identifier = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
