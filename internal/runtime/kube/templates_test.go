package kube

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/pipit-dev/pipit/api/v1alpha1"
)

// templatedSpec measures its canary with the template score, which reads
// the scenario's metric endpoint with the argument service, over many
// checks at 25% so that the test can change the template meanwhile.
const templatedSpec = `
  strategy:
    steps:
      - setWeight: 25
      - analysis: {checks: 1000}
  analysis:
    interval: 1s
    sequential: {enabled: false}
    metrics:
      - name: score
        templateRef: {name: score}
        args: {service: web}
`

// scoreTemplate is the template templatedSpec uses, with the scenario's
// metric endpoint and a default threshold of min.
func scoreTemplate(s *scenario, min float64) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": v1alpha1.APIVersion, "kind": v1alpha1.KindMetricTemplate,
		"metadata": map[string]any{"name": "score", "namespace": s.Namespace},
		"spec": map[string]any{
			"provider":       map[string]any{"web": map[string]any{"url": s.metricURL + "?service={{ .Args.service }}", "jsonPath": "{$.value}"}},
			"thresholdRange": map[string]any{"min": min},
		},
	}}
}

// TestTemplatedMetricInCluster: a Rollout whose template is missing says
// so in its Stalled condition and is not installed; created, the template
// lets it run, measured through the template's provider; changed, the
// template's new threshold applies from the next check.
func TestTemplatedMetricInCluster(t *testing.T) {
	t.Parallel()
	s := newScenario(t)
	s.createWeb(2, templatedSpec)
	s.startController()
	r := s.WaitRollout("web", "the Stalled condition", func(r *v1alpha1.Rollout) bool {
		c := meta.FindStatusCondition(r.Status.Conditions, ConditionStalled)
		return c != nil && c.Status == "True"
	})
	c := meta.FindStatusCondition(r.Status.Conditions, ConditionStalled)
	if c.Reason != "TemplateProblem" || !strings.Contains(c.Message, `spec.analysis.metrics[0].templateRef.name: there is no RolloutMetricTemplate "score" in namespace "`+s.Namespace+`"`) {
		t.Errorf("Stalled condition %+v: want TemplateProblem naming the field and the template", c)
	}
	if r.Status.Stable != nil {
		t.Errorf("a rollout without its template was installed: %+v", r.Status.Stable)
	}

	templates := s.Cluster.Dynamic().Resource(templateResource).Namespace(s.Namespace)
	if _, err := templates.Create(s.Ctx(), scoreTemplate(s, 90), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	s.WaitInstalled("web")
	s.SetImage("web", "registry.example/web:v2")
	s.WaitRollout("web", "a passed check at 25%", func(r *v1alpha1.Rollout) bool {
		last := r.Status.Analysis.LastResults
		return r.Status.CanaryWeight == v1alpha1.PercentOf(25) && len(last) == 1 && last[0].Name == "score" &&
			last[0].Verdict == v1alpha1.VerdictSuccessful
	})

	// The endpoint still answers 100; the template now asks for 200.
	tmpl, err := templates.Get(s.Ctx(), "score", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := unstructured.SetNestedField(tmpl.Object, int64(200), "spec", "thresholdRange", "min"); err != nil {
		t.Fatal(err)
	}
	if _, err := templates.Update(s.Ctx(), tmpl, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	r = s.WaitPhase("web", v1alpha1.PhaseRolledBack)
	if r.Status.Rollback == nil || r.Status.Rollback.Metric != "score" {
		t.Errorf("rollback %+v: want the templated metric score named", r.Status.Rollback)
	}
}

// TestClusterTemplatedMetricInCluster: a metric names a
// ClusterRolloutMetricTemplate, found by name from the Rollout's
// namespace, whose default threshold fails the canary; the Rollout's own
// unit wins over the template's.
func TestClusterTemplatedMetricInCluster(t *testing.T) {
	t.Parallel()
	s := newScenario(t)
	name := "score-" + s.Namespace
	tmpl := scoreTemplate(s, 200)
	tmpl.SetKind(v1alpha1.KindClusterMetricTemplate)
	tmpl.SetNamespace("")
	tmpl.SetName(name)
	if err := unstructured.SetNestedField(tmpl.Object, "pts", "spec", "unit"); err != nil {
		t.Fatal(err)
	}
	cluster := s.Cluster.Dynamic().Resource(clusterTemplateResource)
	if _, err := cluster.Create(s.Ctx(), tmpl, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cluster.Delete(s.Ctx(), name, metav1.DeleteOptions{}) })
	s.createWeb(2, strings.NewReplacer("{name: score}", "{name: "+name+", kind: ClusterRolloutMetricTemplate}",
		"args: {service: web}", "args: {service: web}\n        unit: points").Replace(templatedSpec))
	s.startController()
	s.WaitInstalled("web")
	s.SetImage("web", "registry.example/web:v2")
	r := s.WaitPhase("web", v1alpha1.PhaseRolledBack)
	if r.Status.Rollback == nil || r.Status.Rollback.Metric != "score" || !strings.Contains(r.Status.Message, "points") {
		t.Errorf("rollback %+v, message %q: want score named, with the rollout's unit", r.Status.Rollback, r.Status.Message)
	}
}
