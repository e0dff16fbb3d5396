package kube

import (
	"path/filepath"
	"slices"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/pipit-dev/pipit/internal/testenv/kubefixture"
)

// exportedValue is the value of the series name with exactly labels on the
// registry controller-runtime serves, and whether it is there.
func exportedValue(t *testing.T, name string, labels map[string]string) (float64, bool) {
	t.Helper()
	mfs, err := ctrlmetrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) != len(labels) {
				continue
			}
			for _, l := range m.GetLabel() {
				if labels[l.GetName()] != l.GetValue() {
					continue series
				}
			}
			switch {
			case m.Gauge != nil:
				return m.Gauge.GetValue(), true
			case m.Counter != nil:
				return m.Counter.GetValue(), true
			}
		}
	}
	return 0, false
}

// TestServiceMonitorScrapesTheMetricsService checks the shipped
// ServiceMonitor against the install manifests: it selects the metrics
// Service by its labels and port name, in its namespace.
func TestServiceMonitorScrapesTheMetricsService(t *testing.T) {
	_, objs := renderManifests(t)
	sms, err := readObjects(filepath.Join(kubefixture.RepoPath(t, manifestDir), "monitoring", "servicemonitor.yaml"))
	if err != nil || len(sms) != 1 {
		t.Fatalf("servicemonitor.yaml: %d objects, %v", len(sms), err)
	}
	sm := sms[0]
	selector, _, _ := unstructured.NestedStringMap(sm.Object, "spec", "selector", "matchLabels")
	namespaces, _, _ := unstructured.NestedStringSlice(sm.Object, "spec", "namespaceSelector", "matchNames")
	endpoints, _, _ := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
	if len(selector) == 0 || len(endpoints) != 1 {
		t.Fatalf("ServiceMonitor selects %v with %d endpoints, want labels and one endpoint", selector, len(endpoints))
	}
	ep, _ := endpoints[0].(map[string]any)
	if ep["honorLabels"] != true {
		t.Errorf("endpoint %v: honorLabels must be true, or the rollouts' namespace label is renamed", ep)
	}
	matched := 0
	for _, o := range objs {
		if o.GetKind() != "Service" || !containsAll(o.GetLabels(), selector) || !slices.Contains(namespaces, o.GetNamespace()) {
			continue
		}
		ports, _, _ := unstructured.NestedSlice(o.Object, "spec", "ports")
		for _, p := range ports {
			if pm, _ := p.(map[string]any); pm["name"] == ep["port"] {
				matched++
			}
		}
	}
	if matched != 1 {
		t.Errorf("the ServiceMonitor's selector %v, namespaces %v and port %v match %d Service ports, want 1",
			selector, namespaces, ep["port"], matched)
	}
}

func containsAll(labels, want map[string]string) bool {
	for k, v := range want {
		if labels[k] != v {
			return false
		}
	}
	return true
}
