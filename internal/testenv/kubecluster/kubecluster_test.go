package kubecluster

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

func TestMain(m *testing.M) {
	code := m.Run()
	StopShared()
	os.Exit(code)
}

func TestDeploymentBecomesAvailable(t *testing.T) {
	c := Start(t)
	ns := c.Namespace(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	labels := map[string]string{"app": "web"}
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: appsv1.DeploymentSpec{
			Replicas: new(int32(2)),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name:  "web",
					Image: "registry.example/web:v1",
				}}},
			},
		},
	}
	deployments := c.Clientset().AppsV1().Deployments(ns)
	if _, err := deployments.Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create deployment: %v", err)
	}

	var last *appsv1.Deployment
	err := wait.PollUntilContextCancel(ctx, 200*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		d, err := deployments.Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		last = d
		return d.Status.ObservedGeneration == d.Generation &&
			d.Status.ReadyReplicas == 2 && d.Status.AvailableReplicas == 2 &&
			hasCondition(d.Status.Conditions, appsv1.DeploymentAvailable), nil
	})
	if err != nil {
		t.Fatalf("deployment not Available with 2 ready replicas: %v; status: %+v", err, last.Status)
	}

	pods, err := c.Clientset().CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
	if err != nil {
		t.Fatalf("list pods: %v", err)
	}
	if len(pods.Items) != 2 {
		t.Fatalf("got %d pods, want 2", len(pods.Items))
	}
	for _, p := range pods.Items {
		if p.Spec.NodeName != NodeName || p.Status.Phase != corev1.PodRunning || !podReady(&p) {
			t.Errorf("pod %s: node %q, phase %s, ready %v; want scheduled on %s, Running and Ready",
				p.Name, p.Spec.NodeName, p.Status.Phase, podReady(&p), NodeName)
		}
		if p.Status.PodIP == "" {
			t.Errorf("pod %s has no IP", p.Name)
		}
	}
}

func TestKubeconfigWorks(t *testing.T) {
	c := Start(t)
	cfg, err := clientcmd.BuildConfigFromFlags("", c.Kubeconfig)
	if err != nil {
		t.Fatalf("load kubeconfig: %v", err)
	}
	if cfg.Host != c.Host {
		t.Errorf("kubeconfig server %q, want %q", cfg.Host, c.Host)
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	node, err := client.CoreV1().Nodes().Get(ctx, NodeName, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get node through the kubeconfig: %v", err)
	}
	if node.Annotations["kwok.x-k8s.io/node"] != "fake" {
		t.Errorf("node annotations %v lack kwok.x-k8s.io/node=fake", node.Annotations)
	}
}

func TestWrongTokenIsRefused(t *testing.T) {
	c := Start(t)
	rc := c.RESTConfig()
	rc.BearerToken = "not-a-token"
	if c.RESTConfig().BearerToken == rc.BearerToken {
		t.Fatal("RESTConfig returned the cluster's own configuration, not a copy")
	}
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = client.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	if !apierrors.IsUnauthorized(err) {
		t.Fatalf("list with a wrong token: got %v, want 401 Unauthorized", err)
	}
}

func TestRoutingCRDsInstalled(t *testing.T) {
	c := Start(t)
	ns := c.Namespace(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	httpRoutes := c.Dynamic().Resource(schema.GroupVersionResource{
		Group: "gateway.networking.k8s.io", Version: "v1", Resource: "httproutes",
	}).Namespace(ns)
	route := httpRoute("web", 90, 10)
	if _, err := httpRoutes.Create(ctx, route, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create HTTPRoute: %v", err)
	}
	got, err := httpRoutes.Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get HTTPRoute: %v", err)
	}
	rules, _, _ := unstructured.NestedSlice(got.Object, "spec", "rules")
	if len(rules) != 1 {
		t.Fatalf("HTTPRoute rules = %v, want one rule", rules)
	}
	// The CRD's schema is enforced: a negative weight is refused.
	if _, err := httpRoutes.Create(ctx, httpRoute("bad", -1, 10), metav1.CreateOptions{}); !apierrors.IsInvalid(err) {
		t.Errorf("HTTPRoute with weight -1: got %v, want Invalid", err)
	}

	virtualServices := c.Dynamic().Resource(schema.GroupVersionResource{
		Group: "networking.istio.io", Version: "v1", Resource: "virtualservices",
	}).Namespace(ns)
	vs := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "networking.istio.io/v1",
		"kind":       "VirtualService",
		"metadata":   map[string]any{"name": "web"},
		"spec": map[string]any{
			"hosts": []any{"web"},
			"http": []any{map[string]any{
				"route": []any{
					map[string]any{"destination": map[string]any{"host": "web-stable"}, "weight": int64(90)},
					map[string]any{"destination": map[string]any{"host": "web-canary"}, "weight": int64(10)},
				},
			}},
		},
	}}
	if _, err := virtualServices.Create(ctx, vs, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create VirtualService: %v", err)
	}
	list, err := virtualServices.List(ctx, metav1.ListOptions{})
	if err != nil || len(list.Items) != 1 {
		t.Fatalf("list VirtualServices: %d items, err %v; want 1", lenItems(list), err)
	}
}

// Discovery, which kubectl and controller-runtime's REST mapper rely on,
// must list the routing kinds.
func TestDiscoveryListsRoutingKinds(t *testing.T) {
	c := Start(t)
	for gv, kind := range map[string]string{
		"gateway.networking.k8s.io/v1": "HTTPRoute",
		"networking.istio.io/v1":       "VirtualService",
		"networking.istio.io/v1beta1":  "DestinationRule",
	} {
		res, err := c.Clientset().Discovery().ServerResourcesForGroupVersion(gv)
		if err != nil {
			t.Errorf("discovery of %s: %v", gv, err)
			continue
		}
		var kinds []string
		for _, r := range res.APIResources {
			kinds = append(kinds, r.Kind)
		}
		if !strings.Contains(","+strings.Join(kinds, ",")+",", ","+kind+",") {
			t.Errorf("%s serves %v, want %s among them", gv, kinds, kind)
		}
	}
}

func TestNamespaceNames(t *testing.T) {
	for name, want := range map[string]string{
		"TestFoo":                               "testfoo-",
		"TestFoo/sub_case 2":                    "testfoo-sub-case-2-",
		"/__/":                                  "test-",
		strings.Repeat("a", 70):                 strings.Repeat("a", 40) + "-",
		"Test" + strings.Repeat("x", 35) + "/y": "test" + strings.Repeat("x", 35) + "-",
	} {
		if got := namespaceFor(name).GenerateName; got != want {
			t.Errorf("namespaceFor(%q) = %q, want %q", name, got, want)
		}
	}
}

func httpRoute(name string, stable, canary int64) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "gateway.networking.k8s.io/v1",
		"kind":       "HTTPRoute",
		"metadata":   map[string]any{"name": name},
		"spec": map[string]any{
			"parentRefs": []any{map[string]any{"name": "gateway"}},
			"rules": []any{map[string]any{
				"backendRefs": []any{
					map[string]any{"name": "web-stable", "port": int64(80), "weight": stable},
					map[string]any{"name": "web-canary", "port": int64(80), "weight": canary},
				},
			}},
		},
	}}
}

func hasCondition(conds []appsv1.DeploymentCondition, t appsv1.DeploymentConditionType) bool {
	for _, c := range conds {
		if c.Type == t && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

func lenItems(l *unstructured.UnstructuredList) int {
	if l == nil {
		return 0
	}
	return len(l.Items)
}
