package spec

import (
	"strings"
	"testing"

	"github.com/pipit-dev/pipit/api/v1alpha1"
)

// templatesFile holds a namespaced and a cluster-scoped template.
const templatesFile = `apiVersion: pipit.dev/v1alpha1
kind: RolloutMetricTemplate
metadata:
  name: error-ratio
spec:
  provider:
    prometheus:
      address: http://127.0.0.1:9090
      query: sum(rate(errors{service="{{ .Args.service }}",version="{{ .Version }}"}[{{ .Interval }}]))
  args:
    service: shop
  thresholdRange:
    max: 0.05
  unit: "%"
---
apiVersion: pipit.dev/v1alpha1
kind: ClusterRolloutMetricTemplate
metadata:
  name: latency
spec:
  provider:
    web:
      url: http://127.0.0.1:9100/{{ .Args.route }}/{{ .Role }}
      jsonPath: "{$.value}"
  successCondition: result < 500
`

// templatedRollout uses the templates of templatesFile; metrics is the
// list of spec.analysis.metrics, indented as the items of a list.
func templatedRollout(metrics string) string {
	return `apiVersion: pipit.dev/v1alpha1
kind: Rollout
metadata:
  name: web
spec:
  service:
    listen: 127.0.0.1:8080
    stable: {url: "http://127.0.0.1:9001"}
  strategy:
    steps:
      - setWeight: 10
  analysis:
    metrics:
` + metrics
}

// expandFiles parses each file and expands them together, as pipit up -f
// and pipit validate do.
func expandFiles(t *testing.T, files map[string]string) ([]*Source, Errors) {
	t.Helper()
	var srcs []*Source
	for _, name := range []string{"templates.yaml", "rollout.yaml"} {
		src, err := ParseSource(name, []byte(files[name]))
		if err != nil {
			t.Fatalf("parse %s: %v", name, err)
		}
		srcs = append(srcs, src)
	}
	return srcs, ExpandSources(srcs)
}

func TestTemplateExpandsIntoTheMetric(t *testing.T) {
	srcs, errs := expandFiles(t, map[string]string{"templates.yaml": templatesFile, "rollout.yaml": templatedRollout(`
      - name: errors
        templateRef: {name: error-ratio}
        thresholdRange: {max: 1}
      - name: latency
        templateRef: {name: latency, kind: ClusterRolloutMetricTemplate}
        args: {route: checkout}
        unit: ms
`)})
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	if n := len(srcs[0].Templates); n != 2 {
		t.Fatalf("read %d templates, want 2", n)
	}
	r := srcs[1].Documents[0].Rollout
	errsM, lat := r.Spec.Analysis.Metrics[0], r.Spec.Analysis.Metrics[1]
	if errsM.TemplateRef != nil || errsM.Provider == nil || errsM.Provider.Prometheus == nil {
		t.Fatalf("errors metric not expanded: %+v", errsM)
	}
	// The metric's own threshold wins; the template's unit and argument
	// defaults fill in what it leaves out.
	if *errsM.ThresholdRange.Max != 1 || errsM.Unit != "%" || errsM.Args["service"] != "shop" {
		t.Errorf("errors metric = threshold %v, unit %q, args %v; want max 1, %%, service=shop", *errsM.ThresholdRange.Max, errsM.Unit, errsM.Args)
	}
	if lat.Provider.Web == nil || lat.SuccessCondition != "result < 500" || lat.Unit != "ms" || lat.Args["route"] != "checkout" {
		t.Errorf("latency metric = %+v", lat)
	}
	plan, err := Resolve(&r.Spec)
	if err != nil || plan.Analysis.Metrics[1].Args["route"] != "checkout" {
		t.Errorf("Resolve = %+v, %v", plan.Analysis.Metrics, err)
	}
}

// templateProblems are rollouts whose templateRefs are wrong, with the
// problem each reports: file, line, field and reason.
var templateProblems = []struct {
	name, metrics, want string
}{
	{"missing template", `
      - name: errors
        templateRef: {name: nope}
`, `rollout.yaml:16:23: spec.analysis.metrics[0].templateRef.name: there is no RolloutMetricTemplate "nope" in namespace "default" in the files given`},
	{"wrong kind", `
      - name: errors
        templateRef: {name: latency}
        args: {route: x}
`, `there is no RolloutMetricTemplate "latency" in namespace "default"`},
	{"unknown argument", `
      - name: errors
        templateRef: {name: error-ratio}
        args: {servce: cart}
`, `rollout.yaml:17:16: spec.analysis.metrics[0].args[servce]: unknown argument: the provider's templates do not use {{ .Args.servce }}; they use service`},
	{"missing argument", `
      - name: latency
        templateRef: {name: latency, kind: ClusterRolloutMetricTemplate}
`, `rollout.yaml:15:9: spec.analysis.metrics[0].args: has no value for argument "route", which the provider's templates use as {{ .Args.route }}`},
}

func TestTemplateRefProblems(t *testing.T) {
	for _, c := range templateProblems {
		t.Run(c.name, func(t *testing.T) {
			_, errs := expandFiles(t, map[string]string{"templates.yaml": templatesFile, "rollout.yaml": templatedRollout(c.metrics)})
			if len(errs) != 1 || !strings.Contains(errs[0].Error(), c.want) {
				t.Fatalf("got %v, want one problem containing %q", errs, c.want)
			}
		})
	}
}

// invalidTemplates are templates ValidateTemplate refuses, with the
// problem each reports.
var invalidTemplates = []struct {
	name, doc, want string
}{
	{"no provider", `kind: RolloutMetricTemplate
metadata: {name: t}
spec: {unit: ms}
`, "spec.provider: needs prometheus or web"},
	{"unused default", `kind: RolloutMetricTemplate
metadata: {name: t}
spec:
  provider: {prometheus: {address: "http://p:9090", query: "up"}}
  args: {job: api}
`, "spec.args[job]: the provider's templates do not use {{ .Args.job }}; they use no argument"},
	{"query does not parse", `kind: RolloutMetricTemplate
metadata: {name: t}
spec:
  provider: {prometheus: {address: "http://p:9090", query: "{{ .Args.job "}}
`, "spec.provider: holds a template that does not parse"},
	{"cluster template with a namespace", `kind: ClusterRolloutMetricTemplate
metadata: {name: t, namespace: prod}
spec:
  provider: {prometheus: {address: "http://p:9090", query: "up"}}
`, "metadata.namespace: is not set on a ClusterRolloutMetricTemplate"},
	{"bad condition", `kind: RolloutMetricTemplate
metadata: {name: t}
spec:
  provider: {prometheus: {address: "http://p:9090", query: "up"}}
  failureCondition: "result >"
`, "spec.failureCondition: is not a valid condition"},
	{"unknown field", `kind: RolloutMetricTemplate
metadata: {name: t}
spec:
  provider: {prometheus: {address: "http://p:9090", query: "up"}}
  threshold: {max: 1}
`, `spec.threshold: unknown field "threshold"`},
}

func TestTemplateValidation(t *testing.T) {
	for _, c := range invalidTemplates {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseSource("t.yaml", []byte("apiVersion: pipit.dev/v1alpha1\n"+c.doc))
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "t.yaml:") {
				t.Fatalf("got %v, want a located problem containing %q", err, c.want)
			}
		})
	}
}

func TestTemplateDefinedTwice(t *testing.T) {
	_, errs := expandFiles(t, map[string]string{"templates.yaml": templatesFile, "rollout.yaml": templatesFile + "---\n" + templatedRollout(`
      - name: errors
        templateRef: {name: error-ratio}
`)})
	want := `rollout.yaml:4:3: metadata.name: RolloutMetricTemplate "error-ratio" in namespace "default" is already defined in templates.yaml:4`
	if len(errs) != 2 || errs[0].Error() != want {
		t.Fatalf("got %v, want first %q", errs, want)
	}
}

// TestArgsValidation: args are checked against an inline provider's query
// as against a template's, and need a provider.
func TestArgsValidation(t *testing.T) {
	r := validRollout()
	m := promMetric("orders")
	m.Provider.Prometheus.Query = `sum(rate(orders{job="{{ .Args.job }}"}[1m]))`
	m.Args = map[string]string{"jb": "api"}
	r.Spec.Analysis.Metrics = append(r.Spec.Analysis.Metrics, m, v1alpha1.MetricSpec{
		Name: "request-count", Args: map[string]string{"x": "y"},
	}, v1alpha1.MetricSpec{Name: "t", TemplateRef: &v1alpha1.MetricTemplateRef{Name: "t", Kind: "AnalysisTemplate"}})
	got := Validate(r).Error()
	for _, want := range []string{
		"spec.analysis.metrics[1].args[jb]: unknown argument",
		`spec.analysis.metrics[1].args: has no value for argument "job"`,
		"spec.analysis.metrics[2].args: are the values of {{ .Args.NAME }}",
		`spec.analysis.metrics[3].templateRef.kind: must be RolloutMetricTemplate (default) or ClusterRolloutMetricTemplate, not "AnalysisTemplate"`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in:\n%s", want, got)
		}
	}
}

func TestTemplateRefsListsEveryReference(t *testing.T) {
	r := validRollout()
	r.Spec.Analysis.Metrics = append(r.Spec.Analysis.Metrics, v1alpha1.MetricSpec{Name: "a", TemplateRef: &v1alpha1.MetricTemplateRef{Name: "a"}})
	r.Spec.PostPromotion = &v1alpha1.PostPromotionSpec{Metrics: []v1alpha1.MetricSpec{
		{Name: "b", TemplateRef: &v1alpha1.MetricTemplateRef{Name: "b", Kind: v1alpha1.KindClusterMetricTemplate}},
	}}
	refs := TemplateRefs(r)
	if len(refs) != 2 || refs[0].Kind != v1alpha1.KindMetricTemplate || refs[1].Name != "b" {
		t.Fatalf("TemplateRefs = %+v", refs)
	}
	if out, errs := ExpandTemplates(validRollout(), NewTemplateSet("")); len(errs) > 0 || out == nil {
		t.Fatalf("a rollout without templateRefs: %v", errs)
	}
}

// TestArgsUsedThroughIndex: an argument whose name is not an identifier
// is written with index, as ArgRef writes it, and still counts as used.
func TestArgsUsedThroughIndex(t *testing.T) {
	q := "x{a=\"" + ArgRef("service-name") + "\",b=\"" + ArgRef("zone") + "\"}"
	if !strings.Contains(q, `index .Args "service-name"`) || !strings.Contains(q, ".Args.zone") {
		t.Fatalf("ArgRef wrote %s", q)
	}
	prov := &v1alpha1.MetricProvider{Prometheus: &v1alpha1.PrometheusProvider{Query: q}}
	errs := checkArgs("args", prov, map[string]string{"service-name": "web"}, nil)
	if len(errs) != 1 || !strings.Contains(errs[0].Reason, `argument "zone"`) {
		t.Fatalf("checkArgs = %v, want only zone missing", errs)
	}
}

// TestTemplatedMetricIsNotBuiltin: a templated metric may take the name
// of a built-in one; before it is expanded it is not taken for it (a
// usage metric in Kubernetes, a conversion metric without goals, a
// percentage's bounds, the built-in unit).
func TestTemplatedMetricIsNotBuiltin(t *testing.T) {
	r := validRollout()
	ref := &v1alpha1.MetricTemplateRef{Name: "t"}
	r.Spec.Analysis.Metrics = []v1alpha1.MetricSpec{
		{Name: "conversion-rate", TemplateRef: ref},
		{Name: "error-rate", TemplateRef: ref, ThresholdRange: &v1alpha1.ThresholdRange{Max: ptr(500.0)}},
	}
	if errs := Validate(r); len(errs) > 0 {
		t.Fatalf("Validate: %v", errs)
	}
	if u := MetricUnit(r.Spec.Analysis.Metrics[1]); u != "" {
		t.Errorf("MetricUnit = %q, want none until the template says", u)
	}
}
