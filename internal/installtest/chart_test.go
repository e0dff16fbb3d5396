// Package installtest checks the two ways to install pipit's controller,
// the kustomize manifests in deploy/kubernetes and the Helm chart in
// deploy/helm/pipit: the chart lints, renders what its values say, and by
// default renders the very objects kustomize builds.
package installtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/pipit-dev/pipit/internal/testenv/kubefixture"
)

// chartDir and the kustomize directories, relative to the repository.
const (
	chartDir      = "deploy/helm/pipit"
	kustomizeDir  = "deploy/kubernetes"
	monitoringDir = "deploy/kubernetes/monitoring"
)

// toolsDir is where hack/install-helm-tools.sh put helm and
// kustomize-build; it builds them once per test binary (minutes the first
// time on a machine, cached after).
func toolsDir(t *testing.T) string {
	t.Helper()
	root := kubefixture.RepoPath(t, ".")
	buildTools.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "bash", "hack/install-helm-tools.sh")
		cmd.Dir = root
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			toolsErr = fmt.Errorf("hack/install-helm-tools.sh: %w\n%s", err, &stderr)
		}
		toolsPath = strings.TrimSpace(string(out))
	})
	if toolsErr != nil {
		t.Fatal(toolsErr)
	}
	return toolsPath
}

var (
	buildTools sync.Once
	toolsPath  string
	toolsErr   error
)

// run runs one of the built tools in the repository's root, with Helm's
// configuration and cache in a scratch directory (it reaches no network).
func run(t *testing.T, tool string, args ...string) []byte {
	t.Helper()
	dir := toolsDir(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, dir+"/"+tool, args...)
	cmd.Dir = kubefixture.RepoPath(t, ".")
	home := t.TempDir()
	cmd.Env = append(cmd.Environ(), "HELM_CACHE_HOME="+home+"/cache", "HELM_CONFIG_HOME="+home+"/config",
		"HELM_DATA_HOME="+home+"/data")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s%s", tool, strings.Join(args, " "), err, out, &stderr)
	}
	return out
}

// decode reads a YAML stream of objects.
func decode(t *testing.T, what string, stream []byte) []*unstructured.Unstructured {
	t.Helper()
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(stream), 64*1024)
	var objs []*unstructured.Unstructured
	for {
		obj := &unstructured.Unstructured{}
		err := dec.Decode(&obj.Object)
		if errors.Is(err, io.EOF) {
			return objs
		}
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if len(obj.Object) > 0 {
			objs = append(objs, obj)
		}
	}
}

// render runs helm template on the chart with the --set values given.
func render(t *testing.T, set ...string) []*unstructured.Unstructured {
	t.Helper()
	args := []string{"template", "pipit", chartDir, "--namespace", "pipit-system"}
	for _, s := range set {
		args = append(args, "--set", s)
	}
	return decode(t, "helm template", run(t, "helm", args...))
}

func TestChartLints(t *testing.T) {
	out := run(t, "helm", "lint", "--strict", chartDir, "--set", "serviceMonitor.enabled=true")
	if !bytes.Contains(out, []byte("0 chart(s) failed")) {
		t.Errorf("helm lint:\n%s", out)
	}
}

// key names an object across the two renderings.
func key(o *unstructured.Unstructured) string {
	return o.GetKind() + " " + o.GetNamespace() + "/" + o.GetName()
}

// byKey indexes objs by key, without Helm's own annotations (the CRD's
// resource policy), which kustomize has no use for.
func byKey(t *testing.T, what string, objs []*unstructured.Unstructured) map[string]*unstructured.Unstructured {
	t.Helper()
	m := map[string]*unstructured.Unstructured{}
	for _, o := range objs {
		if _, dup := m[key(o)]; dup {
			t.Errorf("%s renders %s twice", what, key(o))
		}
		ann := o.GetAnnotations()
		for k := range ann {
			if strings.HasPrefix(k, "helm.sh/") {
				delete(ann, k)
			}
		}
		if len(ann) == 0 {
			ann = nil
		}
		o.SetAnnotations(ann)
		m[key(o)] = o
	}
	return m
}

// sameObjects fails t for every object one side has and the other has not
// or has otherwise.
func sameObjects(t *testing.T, chart, kustomize []*unstructured.Unstructured) {
	t.Helper()
	c, k := byKey(t, "the chart", chart), byKey(t, "kustomize", kustomize)
	for name, ko := range k {
		co, ok := c[name]
		if !ok {
			t.Errorf("kustomize installs %s, the chart does not", name)
			continue
		}
		if !reflect.DeepEqual(co.Object, ko.Object) {
			cy, _ := yaml.Marshal(co.Object)
			ky, _ := yaml.Marshal(ko.Object)
			t.Errorf("%s differs:\nthe chart renders\n%s\nkustomize builds\n%s", name, cy, ky)
		}
	}
	for name := range c {
		if _, ok := k[name]; !ok {
			t.Errorf("the chart renders %s, kustomize does not install it", name)
		}
	}
	if len(k) == 0 {
		t.Error("kustomize built nothing")
	}
}

func TestChartRendersTheKustomizeInstall(t *testing.T) {
	sameObjects(t, render(t), decode(t, "kustomize-build", run(t, "kustomize-build", kustomizeDir)))
}

func TestChartServiceMonitorIsTheMonitoringKustomization(t *testing.T) {
	want := decode(t, "kustomize-build", run(t, "kustomize-build", kustomizeDir))
	want = append(want, decode(t, "kustomize-build", run(t, "kustomize-build", monitoringDir))...)
	sameObjects(t, render(t, "serviceMonitor.enabled=true"), want)
}

// TestChartValues checks that each value reaches the objects it is for.
func TestChartValues(t *testing.T) {
	objs := byKey(t, "the chart", render(t, "image.tag=v9.9.9", "image.pullPolicy=Always", "namespace.name=ops",
		"namespace.create=false", "replicas=1", "leaderElection.enabled=false", "crds.install=false",
		"prometheus.url=http://prometheus.monitoring:9090", "resources.limits.memory=1Gi"))
	for name := range objs {
		if strings.HasPrefix(name, "Namespace ") || strings.HasPrefix(name, "CustomResourceDefinition ") {
			t.Errorf("rendered %s with namespace.create and crds.install false", name)
		}
	}
	d, ok := objs["Deployment ops/pipit-controller"]
	if !ok {
		t.Fatalf("no Deployment pipit-controller in namespace ops among %v", keys(objs))
	}
	c := nested(t, d, "spec", "template", "spec", "containers").([]any)[0].(map[string]any)
	checks := []struct{ what, got, want string }{
		{"image", fmt.Sprint(c["image"]), "ghcr.io/pipit-dev/pipit:v9.9.9"},
		{"imagePullPolicy", fmt.Sprint(c["imagePullPolicy"]), "Always"},
		{"replicas", fmt.Sprint(nested(t, d, "spec", "replicas")), "1"},
		{"args", fmt.Sprint(c["args"]), "[controller --metrics-bind-address=:8080 --health-probe-bind-address=:8081 " +
			"--prometheus-url=http://prometheus.monitoring:9090]"},
		{"resources", fmt.Sprint(c["resources"]), "map[limits:map[memory:1Gi] requests:map[cpu:100m memory:64Mi]]"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("Deployment %s: %s, want %s", c.what, c.got, c.want)
		}
	}
	if _, ok := objs["RoleBinding ops/pipit-leader-election"]; !ok {
		t.Errorf("no leader-election RoleBinding in namespace ops among %v", keys(objs))
	}
}

// nested is the field of o at path, which must be there.
func nested(t *testing.T, o *unstructured.Unstructured, path ...string) any {
	t.Helper()
	v, ok, err := unstructured.NestedFieldNoCopy(o.Object, path...)
	if err != nil || !ok {
		t.Fatalf("%s: no %s (%v)", key(o), strings.Join(path, "."), err)
	}
	return v
}

func keys(m map[string]*unstructured.Unstructured) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}
