package kube

import (
	"reflect"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/testenv/kubefixture"
)

var (
	templateResource        = v1alpha1.SchemeGroupVersion.WithResource("rolloutmetrictemplates")
	clusterTemplateResource = v1alpha1.SchemeGroupVersion.WithResource("clusterrolloutmetrictemplates")
)

// templateObject is a metric template of kind, named name, with provider.
func templateObject(kind, name string, provider map[string]any) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": v1alpha1.APIVersion, "kind": kind,
		"metadata": map[string]any{"name": name},
		"spec": map[string]any{
			"provider": provider, "args": map[string]any{"service": "shop"},
			"thresholdRange": map[string]any{"max": 0.05}, "unit": "%",
		},
	}}
}

var promProvider = map[string]any{"prometheus": map[string]any{
	"address": "http://127.0.0.1:9090", "query": `sum(rate(errors{service="{{ .Args.service }}"}[1m]))`,
}}

// TestMetricTemplateCRDs: both kinds are served, the namespaced one in a
// namespace and the cluster one without; a provider of two kinds is
// refused at admission as pipit's validator refuses it.
func TestMetricTemplateCRDs(t *testing.T) {
	c := kubefixture.Cluster(t)
	ns := c.Namespace(t)
	dyn := c.Dynamic()
	ctx := kubefixture.CallContext(t)
	if _, err := dyn.Resource(templateResource).Namespace(ns).Create(ctx,
		templateObject(v1alpha1.KindMetricTemplate, "error-ratio", promProvider), metav1.CreateOptions{}); err != nil {
		t.Fatalf("create a RolloutMetricTemplate: %v", err)
	}
	cluster := dyn.Resource(clusterTemplateResource)
	name := "error-ratio-" + ns
	if _, err := cluster.Create(ctx, templateObject(v1alpha1.KindClusterMetricTemplate, name, promProvider), metav1.CreateOptions{}); err != nil {
		t.Fatalf("create a ClusterRolloutMetricTemplate: %v", err)
	}
	t.Cleanup(func() { _ = cluster.Delete(kubefixture.CallContext(t), name, metav1.DeleteOptions{}) })

	both := map[string]any{"prometheus": promProvider["prometheus"], "web": map[string]any{"url": "http://x/", "jsonPath": "{$.v}"}}
	_, err := dyn.Resource(templateResource).Namespace(ns).Create(ctx,
		templateObject(v1alpha1.KindMetricTemplate, "two-providers", both), metav1.CreateOptions{})
	if !apierrors.IsInvalid(err) || !namesField(err, "spec.provider", "set one of prometheus and web") {
		t.Errorf("a template with two providers: got %v, want it refused naming spec.provider", err)
	}
}

// TestMetricTemplateShortNames: the templates are reached through short
// names of their own, apart from Flagger's MetricTemplate and Argo
// Rollouts' AnalysisTemplate and ClusterAnalysisTemplate.
func TestMetricTemplateShortNames(t *testing.T) {
	c := kubefixture.Cluster(t)
	list, err := c.Clientset().Discovery().ServerResourcesForGroupVersion(v1alpha1.SchemeGroupVersion.String())
	if err != nil {
		t.Fatal(err)
	}
	want := map[schema.GroupVersionResource][]string{templateResource: {"rmt"}, clusterTemplateResource: {"crmt"}}
	for _, r := range list.APIResources {
		gvr := v1alpha1.SchemeGroupVersion.WithResource(r.Name)
		short, ok := want[gvr]
		if !ok || strings.Contains(r.Name, "/") {
			continue
		}
		if !reflect.DeepEqual(r.ShortNames, short) || !reflect.DeepEqual(r.Categories, []string{"pipit"}) {
			t.Errorf("%s: short names %v and categories %v, want %v and [pipit]", r.Name, r.ShortNames, r.Categories, short)
		}
		if r.Namespaced != (gvr == templateResource) {
			t.Errorf("%s: namespaced %v", r.Name, r.Namespaced)
		}
		delete(want, gvr)
	}
	if len(want) > 0 {
		t.Errorf("the API server serves none of %v", want)
	}
}
