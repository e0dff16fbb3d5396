// Package convert turns Flagger Canaries and Argo Rollouts Rollouts, with
// the metric and analysis templates given beside them, into pipit
// Rollouts (and, for an Argo Rollout that embeds its pod template, the
// Deployment pipit rolls out). Every field it cannot carry over is named
// in a Note with the reason: nothing is dropped silently.
package convert

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	yaml "go.yaml.in/yaml/v3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/spec"
)

// The API groups whose objects are converted.
const (
	flaggerGroup = "flagger.app"
	argoGroup    = "argoproj.io"
)

// DefaultPrometheusURL is the Prometheus address of Flagger's built-in
// metrics and of its metric templates that name none: Flagger's own
// default metrics server.
const DefaultPrometheusURL = "http://prometheus:9090"

// ErrNothingToConvert is Convert's error when the input holds no Flagger
// Canary and no Argo Rollouts Rollout.
var ErrNothingToConvert = errors.New("no Flagger Canary (flagger.app/v1beta1) or Argo Rollouts Rollout (argoproj.io/v1alpha1) in the input")

// Options tune a conversion.
type Options struct {
	// PrometheusURL is the address given to metrics whose source names
	// none (Flagger's built-in metrics). Default DefaultPrometheusURL.
	PrometheusURL string
}

// Note is one field of the input that was not carried over, or was
// changed on the way, and why.
type Note struct {
	// File and Line locate the field in the input.
	File string
	Line int
	// Object is the input object, such as "Canary podinfo".
	Object string
	// Field is the field's path, such as spec.analysis.webhooks[1].metadata;
	// empty for the object as a whole.
	Field string
	// Reason says what became of the field, and why.
	Reason string
}

// String renders the note as FILE:LINE: OBJECT: FIELD: REASON.
func (n Note) String() string {
	if n.Field == "" {
		return fmt.Sprintf("%s:%d: %s: %s", n.File, n.Line, n.Object, n.Reason)
	}
	return fmt.Sprintf("%s:%d: %s: %s: %s", n.File, n.Line, n.Object, n.Field, n.Reason)
}

// Result is what a conversion produced.
type Result struct {
	// Objects are the manifests written, in input order: *v1alpha1.Rollout
	// and, beside an Argo Rollout that embedded its pod template, a
	// Deployment as a map.
	Objects []any
	// Notes name every field not carried over or changed, and why.
	Notes []Note
	// Skipped names the documents that are neither Flagger's nor Argo
	// Rollouts', left out of the output.
	Skipped []string
	// Failed names the Canaries and Rollouts that could not be converted
	// at all (their reasons are among Notes).
	Failed []string
}

// converter holds one conversion's input and what it produced.
type converter struct {
	opts      Options
	res       *Result
	templates map[string]*doc // by kind/namespace/name
	// out are the pipit metric templates written.
	out outTemplates
}

// Convert converts the Flagger and Argo Rollouts objects of sources.
// Templates are looked up across all sources, so they may come in files
// of their own. It returns ErrNothingToConvert when no source holds a
// Canary or a Rollout.
func Convert(sources []*spec.Source, opts Options) (*Result, error) {
	if opts.PrometheusURL == "" {
		opts.PrometheusURL = DefaultPrometheusURL
	}
	c := &converter{opts: opts, res: &Result{}, templates: map[string]*doc{}}
	var mains []*doc
	for _, src := range sources {
		for _, d := range src.Documents {
			c.res.Skipped = append(c.res.Skipped, fmt.Sprintf("%s: Rollout %s: already a pipit rollout", d.File, d.Rollout.Name))
		}
		for _, o := range src.Others {
			d := &doc{file: o.File, kind: o.Kind, name: o.Name, root: o.Root, used: map[*yaml.Node]bool{}, notes: &c.res.Notes}
			switch group, _, _ := strings.Cut(o.APIVersion, "/"); {
			case group == flaggerGroup && o.Kind == "Canary", group == argoGroup && o.Kind == "Rollout":
				mains = append(mains, d)
			case group == flaggerGroup && o.Kind == "MetricTemplate",
				group == argoGroup && (o.Kind == "AnalysisTemplate" || o.Kind == "ClusterAnalysisTemplate"):
				c.templates[templateKey(o.Kind, d.namespace(), o.Name)] = d
			default:
				c.res.Skipped = append(c.res.Skipped, o.String()+": not a Flagger Canary or Argo Rollout, nor a template of theirs")
			}
		}
	}
	if len(mains) == 0 {
		c.finishTemplates() // names the templates given alone
		return c.res, ErrNothingToConvert
	}
	for _, d := range mains {
		c.convertOne(d)
	}
	c.finishTemplates()
	slices.SortStableFunc(c.res.Notes, func(a, b Note) int {
		return cmp.Or(cmp.Compare(a.File, b.File), cmp.Compare(a.Line, b.Line), cmp.Compare(a.Field, b.Field))
	})
	return c.res, nil
}

// convertOne converts one Canary or Rollout and names what it left out.
func (c *converter) convertOne(d *doc) {
	top := d.top()
	api := top.get("apiVersion").str()
	top.get("kind")
	var objs []any
	switch d.kind {
	case "Canary":
		if api != flaggerGroup+"/v1beta1" {
			d.note(d.root.Line, "apiVersion", fmt.Sprintf("is %s; read as flagger.app/v1beta1", api))
		}
		objs = c.canary(d)
	default:
		if api != argoGroup+"/v1alpha1" {
			d.note(d.root.Line, "apiVersion", fmt.Sprintf("is %s; read as argoproj.io/v1alpha1", api))
		}
		objs = c.argoRollout(d)
	}
	if objs == nil {
		c.out.drop()
		c.res.Failed = append(c.res.Failed, fmt.Sprintf("%s:%d: %s %s", d.file, d.root.Line, d.kind, d.name))
		d.top().whole()
		return
	}
	d.leftovers()
	c.res.Objects = append(c.res.Objects, c.out.flush()...)
	c.res.Objects = append(c.res.Objects, objs...)
	if !c.validates(d, objs[0]) {
		c.res.Failed = append(c.res.Failed, fmt.Sprintf("%s:%d: %s %s (written, but it does not validate)", d.file, d.root.Line, d.kind, d.name))
	}
}

// finishTemplates names the fields of the templates used that were not
// carried over, and the templates no converted object used.
func (c *converter) finishTemplates() {
	for _, d := range c.templates {
		if len(d.used) == 0 {
			d.note(d.root.Line, "", "not used by any Canary or Rollout of the input; pipit writes the templates the converted rollouts use, so it is not written")
			continue
		}
		d.leftovers()
	}
}

func templateKey(kind, namespace, name string) string {
	if kind == "ClusterAnalysisTemplate" {
		namespace = ""
	}
	return kind + "/" + namespace + "/" + name
}

// template returns the template of kind, namespace and name given in the
// input, marking its identity read, or nil. A template or a rollout
// written without a namespace (for kubectl apply -n) matches any.
func (c *converter) template(kind, namespace, name string) *doc {
	d := c.templates[templateKey(kind, namespace, name)]
	if d == nil {
		for _, key := range slices.Sorted(maps.Keys(c.templates)) {
			if t := c.templates[key]; t.kind == kind && t.name == name && (namespace == "" || t.namespace() == "") {
				d = t
				break
			}
		}
	}
	if d != nil {
		top := d.top()
		top.get("apiVersion")
		top.get("kind")
		// The template is not written: its labels and annotations go nowhere.
		top.get("metadata").whole()
	}
	return d
}

func (d *doc) namespace() string {
	return field{d: d, n: spec.Field(spec.Field(d.root, "metadata"), "namespace")}.str()
}

// newRollout starts the pipit Rollout of d with its metadata: name,
// namespace, labels and annotations carry over.
func newRollout(d *doc) *v1alpha1.Rollout {
	r := &v1alpha1.Rollout{TypeMeta: metav1.TypeMeta{APIVersion: v1alpha1.SchemeGroupVersion.String(), Kind: "Rollout"}}
	meta := d.top().get("metadata")
	r.Name = meta.get("name").str()
	r.Namespace = meta.get("namespace").str()
	meta.get("labels").decode(&r.Labels)
	meta.get("annotations").decode(&r.Annotations)
	for _, k := range meta.keys() {
		switch k {
		case "name", "namespace", "labels", "annotations":
		default:
			meta.drop(k, "set by the API server or for the source's own object; not carried over")
		}
	}
	return r
}

// dropAll drops every field of f listed in reasons, with its reason.
func dropAll(f field, reasons map[string]string) {
	for k, why := range reasons {
		f.drop(k, why)
	}
}
