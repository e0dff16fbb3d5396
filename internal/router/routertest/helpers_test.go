package routertest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/router"
	"github.com/pipit-dev/pipit/internal/spec"
	"github.com/pipit-dev/pipit/internal/testenv/kubecluster"
)

// repoRoot is the repository's root, seen from this package's directory.
const repoRoot = "../../.."

// callTimeout bounds one call to the API server; waitTimeout a wait for
// the cluster to act on one.
const (
	callTimeout = 30 * time.Second
	waitTimeout = 2 * time.Minute
)

var (
	crdOnce sync.Once
	crdErr  error
)

// clusterClient returns a client of the shared cluster, which has the
// Gateway API and Istio CRDs, with pipit's Rollout CRD installed.
func clusterClient(t *testing.T) (*kubecluster.Cluster, client.Client) {
	t.Helper()
	c := kubecluster.Start(t)
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{router.AddToScheme, v1alpha1.AddToScheme, apiextensionsv1.AddToScheme} {
		if err := add(s); err != nil {
			t.Fatal(err)
		}
	}
	cl, err := client.New(c.RESTConfig(), client.Options{Scheme: s})
	if err != nil {
		t.Fatal(err)
	}
	crdOnce.Do(func() { crdErr = installRolloutCRD(cl) })
	if crdErr != nil {
		t.Fatalf("install the Rollout CRD: %v", crdErr)
	}
	return c, cl
}

// installRolloutCRD creates the committed CRD and waits until it is served.
func installRolloutCRD(cl client.Client) error {
	f, err := os.Open(filepath.Join(repoRoot, "deploy/kubernetes/crd/pipit.dev_rollouts.yaml"))
	if err != nil {
		return err
	}
	defer f.Close()
	var crd apiextensionsv1.CustomResourceDefinition
	if err := utilyaml.NewYAMLOrJSONDecoder(f, 64*1024).Decode(&crd); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := cl.Create(ctx, &crd); err != nil {
		return err
	}
	return wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		var got apiextensionsv1.CustomResourceDefinition
		if err := cl.Get(ctx, client.ObjectKeyFromObject(&crd), &got); err != nil {
			return false, nil
		}
		for _, c := range got.Status.Conditions {
			if c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue {
				return true, nil
			}
		}
		return false, nil
	})
}

// createRollout creates a Kubernetes Rollout of Deployment web with the
// router and traffic given, so that what the routers create has a real
// owner (the garbage collector deletes objects whose owner is missing).
func createRollout(t *testing.T, cl client.Client, ns string, r *v1alpha1.KubernetesRouter, traffic *v1alpha1.TrafficSpec) (*v1alpha1.Rollout, spec.KubePlan) {
	t.Helper()
	five := v1alpha1.PercentOf(5)
	ro := &v1alpha1.Rollout{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1alpha1.SchemeGroupVersion.String(), Kind: "Rollout"},
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Spec: v1alpha1.RolloutSpec{
			TargetRef:  &v1alpha1.TargetRef{Name: "web"},
			Kubernetes: &v1alpha1.KubernetesSpec{Router: r, Traffic: traffic},
			Strategy:   v1alpha1.Strategy{Steps: []v1alpha1.Step{{SetWeight: &five}}},
		},
	}
	if errs := spec.Validate(ro); len(errs) > 0 {
		t.Fatalf("the test's rollout is invalid: %v", errs)
	}
	if err := cl.Create(callCtx(t), ro); err != nil {
		t.Fatalf("create Rollout: %v", err)
	}
	return ro, spec.ResolveKubernetes(ro)
}

func callCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	t.Cleanup(cancel)
	return ctx
}

// create creates obj, failing the test when the API server refuses it.
func create(t *testing.T, cl client.Client, obj client.Object) {
	t.Helper()
	if err := cl.Create(callCtx(t), obj); err != nil {
		t.Fatalf("create %T %s: %v", obj, obj.GetName(), err)
	}
}

// get reads obj back by its name and namespace.
func get(t *testing.T, cl client.Client, obj client.Object) {
	t.Helper()
	if err := cl.Get(callCtx(t), client.ObjectKeyFromObject(obj), obj); err != nil {
		t.Fatalf("get %T %s: %v", obj, obj.GetName(), err)
	}
}

// istioObject is an empty VirtualService or DestinationRule to get into.
func istioObject(kind, ns, name string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetAPIVersion("networking.istio.io/v1")
	u.SetKind(kind)
	u.SetNamespace(ns)
	u.SetName(name)
	return u
}

// waitGone waits until the garbage collector deleted obj.
func waitGone(t *testing.T, cl client.Client, obj client.Object) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	var last error
	err := wait.PollUntilContextCancel(ctx, 200*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		last = cl.Get(ctx, client.ObjectKeyFromObject(obj), obj)
		return apierrors.IsNotFound(last), nil
	})
	if err != nil {
		t.Fatalf("%T %s still there: %v (last get: %v)", obj, obj.GetName(), err, last)
	}
}

// must fails the test on err, naming what was done.
func must(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(fmt.Errorf("%s: %w", what, err))
	}
}
