package router

import (
	"context"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/spec"
)

const testNamespace = "shop"

// kubeRollout is a Kubernetes rollout of Deployment web in namespace shop:
// Services web, web-stable and web-canary on port 80.
func kubeRollout(router *v1alpha1.KubernetesRouter, traffic *v1alpha1.TrafficSpec) *v1alpha1.Rollout {
	return &v1alpha1.Rollout{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: testNamespace, UID: "rollout-uid"},
		Spec: v1alpha1.RolloutSpec{
			TargetRef:  &v1alpha1.TargetRef{Name: "web"},
			Kubernetes: &v1alpha1.KubernetesSpec{Router: router, Traffic: traffic},
		},
	}
}

func plan(r *v1alpha1.Rollout) spec.KubePlan { return spec.ResolveKubernetes(r) }

// newFakeClient is a fake API server holding objs, with the Gateway API
// and pipit's types; Istio's objects are unstructured. funcs, when given,
// intercept calls.
func newFakeClient(t *testing.T, funcs *interceptor.Funcs, objs ...client.Object) client.Client {
	t.Helper()
	s := runtime.NewScheme()
	if err := AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	if err := v1alpha1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	b := fake.NewClientBuilder().WithScheme(s).WithObjects(objs...)
	if funcs != nil {
		b = b.WithInterceptorFuncs(*funcs)
	}
	return b.Build()
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func ttl(d time.Duration) *metav1.Duration { return &metav1.Duration{Duration: d} }
