package convert

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/spec"
)

// outTemplates are the pipit metric templates a conversion writes, each
// once however many rollouts use it: those of the rollouts converted
// (written), and those of the rollout being converted (pending, written
// with it, or dropped if it fails).
type outTemplates struct {
	written []any
	keys    map[string]bool
	pending []any
	pendKey []string
}

// add queues a template for the rollout being converted, unless it is
// written or queued already.
func (o *outTemplates) add(kind, namespace, name string, ts v1alpha1.MetricTemplateSpec) {
	key := kind + "/" + namespace + "/" + name
	if o.keys[key] {
		return
	}
	if o.keys == nil {
		o.keys = map[string]bool{}
	}
	o.keys[key] = true
	meta := metav1.ObjectMeta{Name: name, Namespace: namespace}
	tm := metav1.TypeMeta{APIVersion: v1alpha1.APIVersion, Kind: kind}
	var obj any = &v1alpha1.RolloutMetricTemplate{TypeMeta: tm, ObjectMeta: meta, Spec: ts}
	if kind == v1alpha1.KindClusterMetricTemplate {
		meta.Namespace = ""
		obj = &v1alpha1.ClusterRolloutMetricTemplate{TypeMeta: tm, ObjectMeta: meta, Spec: ts}
	}
	o.pending = append(o.pending, obj)
	o.pendKey = append(o.pendKey, key)
}

// flush returns the queued templates to write, now written.
func (o *outTemplates) flush() []any {
	out := o.pending
	o.written = append(o.written, out...)
	o.pending, o.pendKey = nil, nil
	return out
}

// drop forgets the queued templates of a rollout that was not converted.
func (o *outTemplates) drop() {
	for _, k := range o.pendKey {
		delete(o.keys, k)
	}
	o.pending, o.pendKey = nil, nil
}

// validates runs the converted rollout through pipit's validation, as
// `pipit validate` would read it with the templates written, and notes
// each problem at the source object.
func (c *converter) validates(d *doc, rollout any) bool {
	var b bytes.Buffer
	if err := Write(&b, append(append([]any{}, c.out.written...), rollout)); err != nil {
		d.note(d.root.Line, "", err.Error())
		return false
	}
	src, err := spec.ParseSource("converted", b.Bytes())
	if err == nil {
		if errs := spec.ExpandSources([]*spec.Source{src}); len(errs) > 0 {
			err = errs
		}
	}
	var errs spec.Errors
	if errors.As(err, &errs) {
		for _, e := range errs {
			d.note(d.root.Line, "", fmt.Sprintf("the converted rollout does not validate: %s: %s", e.Field, e.Reason))
		}
	} else if err != nil {
		d.note(d.root.Line, "", "the converted rollout does not validate: "+err.Error())
	}
	return err == nil
}

// flaggerTemplateMetric converts a metric naming a MetricTemplate given in
// the input into a metric whose templateRef names the template written
// as a RolloutMetricTemplate of the rollout's namespace, its variables
// passed as args.
func (c *converter) flaggerTemplateMetric(ms v1alpha1.MetricSpec, m, ref field, cc *canaryContext, vars map[string]string) (v1alpha1.MetricSpec, bool) {
	prom := c.flaggerTemplate(ref, cc.r.Namespace)
	if prom == nil {
		return ms, false
	}
	query, args, unknown := flaggerTemplateQuery(prom.Query, vars, cc.r.Spec.TargetRef.Name)
	if len(unknown) > 0 {
		m.noteHere(fmt.Sprintf("metric %q not carried over: its query uses %s, which pipit has no value for", ms.Name, strings.Join(unknown, ", ")))
		return ms, false
	}
	prom.Query = query
	name := ref.get("name").str()
	if ns := ref.get("namespace"); ns.ok() && ns.str() != cc.r.Namespace {
		ns.noteHere(fmt.Sprintf("a RolloutMetricTemplate serves the rollouts of its own namespace: the template is written as %s in the rollout's namespace", name))
	}
	c.out.add(v1alpha1.KindMetricTemplate, cc.r.Namespace, name, v1alpha1.MetricTemplateSpec{Provider: v1alpha1.MetricProvider{Prometheus: prom}})
	ms.TemplateRef = &v1alpha1.MetricTemplateRef{Name: name}
	if len(args) > 0 {
		ms.Args = args
	}
	return ms, true
}

// flaggerTemplateQuery turns a MetricTemplate's query into a pipit
// template's: {{ namespace }} becomes {{ .Namespace }}, {{ target }} the
// target's copy of each version, the other variables arguments, whose
// values it returns (variables.X is the argument X); and it returns the
// variables it has no value for.
func flaggerTemplateQuery(q string, vars map[string]string, target string) (string, map[string]string, []string) {
	args := map[string]string{}
	var unknown []string
	out := flaggerPlaceholder.ReplaceAllStringFunc(q, func(s string) string {
		name := flaggerPlaceholder.FindStringSubmatch(s)[1]
		switch v, ok := vars[name]; {
		case name == "namespace":
			return "{{ .Namespace }}"
		case name == "target":
			args["target"] = target
			return spec.ArgRef("target") + "-{{ .Role }}"
		case ok:
			arg := strings.TrimPrefix(name, "variables.")
			args[arg] = v
			return spec.ArgRef(arg)
		}
		unknown = append(unknown, "{{ "+name+" }}")
		return s
	})
	return out, args, unknown
}

// argoArgUses lists the arguments s names as {{args.NAME}}.
func argoArgUses(s string) []string {
	var out []string
	for _, m := range argoArg.FindAllStringSubmatch(s, -1) {
		out = append(out, m[1])
	}
	return out
}

// argoTemplated turns a converted metric of an Argo template into one
// whose templateRef names a pipit template written for it: the provider,
// with {{args.NAME}} as {{ .Args.NAME }}, and the template's argument
// defaults go into the template; the rollout's arguments into the
// metric's args. A metric whose arguments reach the address, headers or
// JSON path, which are not templates in pipit, or whose template cannot
// be named, stays written out whole.
func (c *converter) argoTemplated(am *argoMetric, t *doc, kind, namespace string, metrics int, defaults, given map[string]string) {
	raw := am.raw
	var rest []string
	var templated []*string
	if pr := raw.Prometheus; pr != nil {
		rest, templated = []string{pr.Address}, []*string{&pr.Query}
		rest = append(rest, slices.Collect(maps.Values(pr.Headers))...)
	}
	if w := raw.Web; w != nil {
		rest, templated = append([]string{w.JSONPath}, slices.Collect(maps.Values(w.Headers))...), []*string{&w.URL, &w.Body}
	}
	for _, s := range rest {
		if len(argoArgUses(s)) > 0 {
			return
		}
	}
	name := t.name
	if metrics > 1 {
		name = t.name + "-" + dnsSafe.ReplaceAllString(strings.ToLower(am.spec.Name), "-")
	}
	if len(validation.IsDNS1123Label(name)) > 0 {
		return
	}
	ts := v1alpha1.MetricTemplateSpec{Provider: *raw}
	args := map[string]string{}
	for _, s := range templated {
		for _, arg := range argoArgUses(*s) {
			if v, ok := defaults[arg]; ok {
				if ts.Args == nil {
					ts.Args = map[string]string{}
				}
				ts.Args[arg] = v
			}
			if v, ok := given[arg]; ok {
				args[arg] = v
			}
		}
		*s = argoArg.ReplaceAllStringFunc(*s, func(m string) string { return spec.ArgRef(argoArg.FindStringSubmatch(m)[1]) })
	}
	c.out.add(kind, namespace, name, ts)
	am.spec.Provider = nil
	am.spec.TemplateRef = &v1alpha1.MetricTemplateRef{Name: name}
	if kind == v1alpha1.KindClusterMetricTemplate {
		am.spec.TemplateRef.Kind = kind
	}
	if len(args) > 0 {
		am.spec.Args = args
	}
}

// dnsSafe matches what a template name may not hold.
var dnsSafe = regexp.MustCompile(`[^a-z0-9-]+`)
