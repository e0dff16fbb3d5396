package convert

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
	"text/template"
	"time"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/spec"
)

// expandedQuery reads the conversion's output as pipit up would, with its
// templates, and runs the query of the first rollout's metric with its
// arguments and the fields in data.
func expandedQuery(t *testing.T, c conversion, metric string, data map[string]any) string {
	t.Helper()
	src, err := spec.ParseSource("out.yaml", c.out)
	if err != nil {
		t.Fatal(err)
	}
	if errs := spec.ExpandSources([]*spec.Source{src}); len(errs) > 0 {
		t.Fatal(errs)
	}
	for _, m := range src.Documents[0].Rollout.Spec.Analysis.Metrics {
		if m.Name != metric {
			continue
		}
		if data == nil {
			data = map[string]any{}
		}
		data["Args"] = m.Args
		tmpl := template.Must(template.New("").Option("missingkey=error").Parse(m.Provider.Prometheus.Query))
		var b bytes.Buffer
		if err := tmpl.Execute(&b, data); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	t.Fatalf("no metric %s in the output", metric)
	return ""
}

// converted converts one testdata file into its single rollout.
func converted(t *testing.T, name string) (*v1alpha1.Rollout, conversion) {
	t.Helper()
	c := convertFiles(t, filepath.Join("testdata", name))
	rs := rollouts(c.res.Objects)
	if c.err != nil || len(rs) != 1 {
		t.Fatalf("err %v, %d rollouts\n%s", c.err, len(rs), c.notes)
	}
	return rs[0], c
}

// TestFlaggerMeaning checks what a Flagger A/B test means once converted:
// the threshold, the iterations, the match, the session affinity, the
// metrics and the hey load test.
func TestFlaggerMeaning(t *testing.T) {
	r, c := converted(t, "flagger-ab.yaml")
	a := r.Spec.Analysis
	if a.FailureLimit == nil || *a.FailureLimit != 2 {
		t.Errorf("threshold 3 (rolled back at the third failure) gave failureLimit %v, want 2", a.FailureLimit)
	}
	if s := r.Spec.Strategy.Steps; len(s) != 1 || s[0].Analysis == nil || s[0].Analysis.Checks != 5 {
		t.Errorf("iterations 5 with a match gave steps %+v, want one analysis step of 5 checks", s)
	}
	tr := r.Spec.Kubernetes.Traffic
	if len(tr.Rules) != 2 || tr.Rules[0].Headers["x-canary"].Exact != "insider" || tr.Rules[0].To != v1alpha1.DestinationCanary {
		t.Errorf("rules = %+v", tr.Rules)
	}
	if tr.StickySession == nil || tr.StickySession.TTL.Duration != time.Hour {
		t.Errorf("sticky session = %+v, want a TTL of maxAge 3600s", tr.StickySession)
	}
	var names []string
	for _, m := range a.Metrics {
		names = append(names, m.Name)
	}
	if strings.Join(names, ",") != "request-success-rate,errors" {
		t.Errorf("metrics %v, want request-success-rate and errors (the others have no pipit source)", names)
	}
	// The MetricTemplate is written as a pipit template, its variables
	// passed by the metric; expanded, the query is Flagger's for each
	// version.
	errs := a.Metrics[1]
	if errs.Provider != nil || errs.TemplateRef == nil || errs.TemplateRef.Name != "region-errors" {
		t.Fatalf("errors = %+v, want a templateRef to region-errors", errs)
	}
	want := `sum(rate(errors{ns="shop",wl="web-canary",region="eu-west-1"}[1m]))`
	if got := expandedQuery(t, c, "errors", map[string]any{"Namespace": "shop", "Role": "canary"}); got != want {
		t.Errorf("the template's query, expanded for the canary, is %s, want %s", got, want)
	}
	if !strings.Contains(a.Metrics[0].Provider.Prometheus.Query, "istio_requests_total") {
		t.Errorf("the Istio rollout's built-in metric is not measured from Istio's metrics: %s", a.Metrics[0].Provider.Prometheus.Query)
	}
	lt := r.Spec.Webhooks[1].LoadTest
	if lt == nil || lt.Rate != 20 || lt.Duration.Duration != 30*time.Second || lt.Method != "POST" || lt.Headers["X-Test"] != "yes" {
		t.Errorf("hey -z 30s -q 5 -c 4 -m POST -H 'X-Test: yes' gave %+v", lt)
	}
	if !strings.Contains(c.notes, "spec.analysis.newFancyField: pipit convert does not know this field") {
		t.Errorf("an unknown field is not named:\n%s", c.notes)
	}
}

// TestArgoMeaning checks an Argo canary with templates and a blue-green
// Rollout once converted.
func TestArgoMeaning(t *testing.T) {
	r, c0 := converted(t, "argo-analysis.yaml")
	var success *v1alpha1.MetricSpec
	for i, m := range r.Spec.Analysis.Metrics {
		if m.Name == "success-rate" {
			success = &r.Spec.Analysis.Metrics[i]
		}
	}
	if success == nil || success.SuccessCondition != "result >= 0.95" || success.TemplateRef == nil || success.Args["service-name"] != "checkout-canary" {
		t.Fatalf("success-rate = %+v; want a templateRef with the rollout's argument, the condition's substituted and result[0] read as result", success)
	}
	if got := expandedQuery(t, c0, "success-rate", nil); !strings.Contains(got, `service="checkout-canary"`) {
		t.Errorf("the template's query, expanded, is %s; want the argument's value in it", got)
	}
	if s := r.Spec.Strategy.Steps[1]; s.Analysis == nil || s.Analysis.Checks != 4 {
		t.Errorf("the analysis step is %+v, want 4 checks (the template's count)", s)
	}
	if g := r.Spec.Kubernetes.Router.GatewayAPI; g == nil || g.HTTPRoute != "checkout-route" {
		t.Errorf("router = %+v", r.Spec.Kubernetes.Router)
	}
	bg, c := converted(t, "argo-bluegreen.yaml")
	b := bg.Spec.Strategy.BlueGreen
	if bg.Spec.Decision != v1alpha1.DecisionManual || *b.Checks != 3 || b.AutoPromotionAfter.Duration != 10*time.Minute || b.PreviewService != "bg-preview" {
		t.Errorf("blue-green = %+v, decision %s", b, bg.Spec.Decision)
	}
	if p := bg.Spec.PostPromotion; p == nil || p.Duration.Duration != time.Minute || bg.Spec.UndoWindow.Duration != time.Minute {
		t.Errorf("post promotion %+v, undo window %v: want 3 × 20s, and the undo window at least as long", p, bg.Spec.UndoWindow)
	}
	if len(c.res.Objects) != 3 {
		t.Errorf("wrote %d objects, want the metric template, the rollout and the Deployment of its pod template", len(c.res.Objects))
	}
}

// unconvertible are inputs that cannot become a valid rollout: what is
// written for them, and what the notes must say.
var unconvertible = []struct {
	file    string
	written int
	note    string
}{
	{"flagger-daemonset.yaml", 0, `spec.targetRef.kind: is "DaemonSet": pipit rolls out Deployments only`},
	{"flagger-nginx-ab.yaml", 1, "Canary shop: the converted rollout does not validate: spec.kubernetes.traffic: rules, stickySession and mirror need a router"},
}

// TestUnconvertible: a Canary of a DaemonSet, or an A/B test without a
// router pipit has, is named as failed, with why.
func TestUnconvertible(t *testing.T) {
	for _, tc := range unconvertible {
		c := convertFiles(t, filepath.Join("testdata", tc.file))
		if len(c.res.Failed) != 1 || len(c.res.Objects) != tc.written {
			t.Errorf("%s: failed %v, %d objects written, want %d", tc.file, c.res.Failed, len(c.res.Objects), tc.written)
		}
		if !strings.Contains(c.notes, tc.note) {
			t.Errorf("%s: notes lack %q:\n%s", tc.file, tc.note, c.notes)
		}
	}
}
