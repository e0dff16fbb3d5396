package deploymenttest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/rollout"
	"github.com/pipit-dev/pipit/internal/spec"
	"github.com/pipit-dev/pipit/internal/target"
	"github.com/pipit-dev/pipit/internal/testenv/kubefixture"
)

// env is one test's namespace with the user's Deployment "web", a Rollout
// "web" owning what pipit creates, and the target under test.
type env struct {
	*kubefixture.Env
	rollout *v1alpha1.Rollout
	d       *target.Deployment
}

// newEnv creates the namespace, the user's Deployment dep (named web) and
// the Rollout, whose spec.kubernetes is k (nil for the defaults).
func newEnv(t *testing.T, dep *appsv1.Deployment, k *v1alpha1.KubernetesSpec) *env {
	t.Helper()
	e := &env{Env: kubefixture.New(t)}
	e.Create(dep)
	e.rollout = &v1alpha1.Rollout{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec:       v1alpha1.RolloutSpec{TargetRef: &v1alpha1.TargetRef{Name: dep.Name}, Kubernetes: k},
	}
	e.Create(e.rollout)
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	e.d = target.NewDeployment(e.Client, e.rollout, spec.ResolveKubernetes(e.rollout), nil, log)
	return e
}

// webDeployment is a user's Deployment of image with a container port and
// a progress deadline.
func webDeployment(image string, replicas, deadlineSeconds int32) *appsv1.Deployment {
	labels := map[string]string{"app": "web"}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{
			Name: "web", Labels: map[string]string{"app.kubernetes.io/name": "web"},
			Annotations: map[string]string{"team": "shop"},
		},
		Spec: appsv1.DeploymentSpec{
			Replicas:                &replicas,
			ProgressDeadlineSeconds: &deadlineSeconds,
			Selector:                &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name: "web", Image: image,
					Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
				}}},
			},
		},
	}
}

// untilReady calls step until it stops answering ErrNotReady; any other
// error fails the test.
func (e *env) untilReady(what string, step func(ctx context.Context) error) {
	e.T.Helper()
	e.Eventually(what, func(ctx context.Context) error {
		err := step(ctx)
		if err != nil && !errors.Is(err, target.ErrNotReady) {
			e.T.Fatalf("%s: %v", what, err)
		}
		return err
	})
}

// rolledOut fails unless name runs want replicas of its current template,
// all available.
func (e *env) rolledOut(ctx context.Context, name string, want int32) error {
	var d appsv1.Deployment
	if err := e.Client.Get(ctx, e.Key(name), &d); err != nil {
		return err
	}
	s := d.Status
	if replicasOf(&d) != want || s.ObservedGeneration < d.Generation ||
		s.Replicas != want || s.UpdatedReplicas != want || s.AvailableReplicas != want {
		return fmt.Errorf("Deployment %s: generation %d, replicas %d, status %+v", name, d.Generation, replicasOf(&d), s)
	}
	return nil
}

func replicasOf(d *appsv1.Deployment) int32 {
	if d.Spec.Replicas == nil {
		return 1
	}
	return *d.Spec.Replicas
}

// setImage plays the user changing the image of their Deployment, and
// returns the version it now describes.
func (e *env) setImage(change func(*corev1.PodSpec)) v1alpha1.VersionRef {
	e.T.Helper()
	e.UpdateDeployment("web", func(d *appsv1.Deployment) { change(&d.Spec.Template.Spec) })
	v, err := e.d.Desired(e.Ctx())
	if err != nil {
		e.T.Fatalf("Desired: %v", err)
	}
	return v
}

// wantEndpoints fails unless the cluster lists want ready endpoints for a
// Service: proof that its selector picks the pods it should.
func (e *env) wantEndpoints(ctx context.Context, service string, want int) error {
	var slices discoveryv1.EndpointSliceList
	if err := e.Client.List(ctx, &slices, client.InNamespace(e.Namespace), client.MatchingLabels{discoveryv1.LabelServiceName: service}); err != nil {
		return err
	}
	n := 0
	for _, s := range slices.Items {
		for _, ep := range s.Endpoints {
			if ep.Conditions.Ready != nil && *ep.Conditions.Ready {
				n++
			}
		}
	}
	if n != want {
		return fmt.Errorf("Service %s has %d ready endpoints, want %d", service, n, want)
	}
	return nil
}

// podImages lists the images of the pods with the labels, deduplicated.
func (e *env) podImages(ctx context.Context, labels map[string]string) (map[string]int, error) {
	var pods corev1.PodList
	if err := e.Client.List(ctx, &pods, client.InNamespace(e.Namespace), client.MatchingLabels(labels)); err != nil {
		return nil, err
	}
	out := map[string]int{}
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil {
			out[p.Spec.Containers[0].Image]++
		}
	}
	return out, nil
}

func TestRolloutThroughTheCopies(t *testing.T) {
	e := newEnv(t, webDeployment("registry.example/web:v1", 4, 600), nil)
	e.Eventually("the user's Deployment rolls out", func(ctx context.Context) error { return e.rolledOut(ctx, "web", 4) })

	v1 := installThroughTheCopies(t, e)
	v2 := canaryThroughTheCopies(t, e, v1)
	promoteThroughTheCopies(t, e, v2)
	releaseThroughTheCopies(t, e)
}

// installThroughTheCopies installs the user's Deployment: the stable copy
// serves it behind the Services, the Deployment held at zero.
func installThroughTheCopies(t *testing.T, e *env) v1alpha1.VersionRef {
	t.Helper()
	v1, err := e.d.Desired(e.Ctx())
	if err != nil {
		t.Fatal(err)
	}
	if v1.Version != "registry.example/web:v1" {
		t.Fatalf("Desired = %+v", v1)
	}
	e.untilReady("Install", func(ctx context.Context) error { return e.d.Install(ctx, v1) })
	if err := e.rolledOut(e.Ctx(), "web-stable", 4); err != nil {
		t.Fatalf("Install returned before the stable copy rolled out: %v", err)
	}
	web := e.Deployment("web")
	if *web.Spec.Replicas != 0 || web.Annotations[target.AnnotationOriginalReplicas] != "4" {
		t.Fatalf("the user's Deployment has %d replicas, original-replicas %q; want 0 and 4",
			*web.Spec.Replicas, web.Annotations[target.AnnotationOriginalReplicas])
	}
	stable := e.Deployment("web-stable")
	if stable.Annotations["team"] != "shop" || stable.Labels["app.kubernetes.io/name"] != "web" ||
		stable.Labels[target.LabelManagedBy] != target.ManagedBy || stable.Annotations[target.AnnotationTemplateHash] != v1.Template {
		t.Errorf("stable copy metadata: labels %v, annotations %v", stable.Labels, stable.Annotations)
	}

	// The Services select the right pods: the cluster lists them as
	// endpoints.
	wantSelectors := map[string]map[string]string{
		"web":        {"app": "web"},
		"web-stable": {"app": "web", target.LabelRole: target.RoleStable},
		"web-canary": {"app": "web", target.LabelRole: target.RoleCanary},
	}
	for name, sel := range wantSelectors {
		var svc corev1.Service
		if err := e.Client.Get(e.Ctx(), e.Key(name), &svc); err != nil {
			t.Fatalf("Service %s: %v", name, err)
		}
		if !maps.Equal(svc.Spec.Selector, sel) || svc.Spec.Ports[0].TargetPort.IntValue() != 8080 || svc.Spec.ClusterIP == "" {
			t.Errorf("Service %s: selector %v, ports %+v, clusterIP %q", name, svc.Spec.Selector, svc.Spec.Ports, svc.Spec.ClusterIP)
		}
	}
	for _, svc := range []string{"web", "web-stable"} {
		e.Eventually("Service "+svc+" lists the stable copy's 4 pods", func(ctx context.Context) error {
			return e.wantEndpoints(ctx, svc, 4)
		})
	}
	if o := e.d.Observe(e.Ctx()); o.StableVersion != v1.Template || o.CanaryVersion != "" {
		t.Errorf("installed: Observe = %+v, want stable %s and no canary", o, v1.Template)
	}
	return v1
}

// canaryThroughTheCopies has the user set a new image: it runs as the
// canary, one replica at 0% with the replica router, then half of them.
func canaryThroughTheCopies(t *testing.T, e *env, v1 v1alpha1.VersionRef) v1alpha1.VersionRef {
	t.Helper()
	v2 := e.setImage(func(p *corev1.PodSpec) { p.Containers[0].Image = "registry.example/web:v2" })
	if v2.Template == v1.Template {
		t.Fatal("a new image did not change the template hash")
	}
	if err := e.d.DeployCanary(e.Ctx(), v2); err != nil {
		t.Fatal(err)
	}
	e.Eventually("the canary is up", func(ctx context.Context) error { return wantCanaryUp(e.d.Observe(ctx), v2) })
	if got := *e.Deployment("web-canary").Spec.Replicas; got != 1 {
		t.Errorf("canary runs %d replicas at 0%%, want 1", got)
	}

	if err := e.d.ScaleForWeight(e.Ctx(), v1alpha1.PercentOf(50)); err != nil {
		t.Fatal(err)
	}
	e.Eventually("half the replicas run the canary", func(ctx context.Context) error {
		if err := e.rolledOut(ctx, "web-stable", 2); err != nil {
			return err
		}
		if err := e.rolledOut(ctx, "web-canary", 2); err != nil {
			return err
		}
		return wantCanaryUp(e.d.Observe(ctx), v2)
	})
	e.Eventually("the apex Service lists both versions' pods", func(ctx context.Context) error {
		if err := e.wantEndpoints(ctx, "web-canary", 2); err != nil {
			return err
		}
		return e.wantEndpoints(ctx, "web", 4)
	})
	return v2
}

// promoteThroughTheCopies promotes: all replicas to the canary, then the
// stable copy takes its template and the canary is retired.
func promoteThroughTheCopies(t *testing.T, e *env, v2 v1alpha1.VersionRef) {
	t.Helper()
	if err := e.d.ScaleForWeight(e.Ctx(), v1alpha1.FullWeight); err != nil {
		t.Fatal(err)
	}
	if err := e.d.Promote(e.Ctx(), v2); err != nil {
		t.Fatal(err)
	}
	e.Eventually("the stable copy serves v2", func(ctx context.Context) error {
		if o := e.d.Observe(ctx); o.StableVersion != v2.Template {
			return fmt.Errorf("Observe = %+v", o)
		}
		return nil
	})
	e.Eventually("every stable pod runs v2", func(ctx context.Context) error {
		images, err := e.podImages(ctx, map[string]string{target.LabelRole: target.RoleStable})
		if err == nil && !maps.Equal(images, map[string]int{"registry.example/web:v2": 4}) {
			err = fmt.Errorf("stable pods run %v", images)
		}
		return err
	})

	if err := e.d.ScaleForWeight(e.Ctx(), 0); err != nil {
		t.Fatal(err)
	}
	if err := e.d.RetireCanary(e.Ctx(), v2); err != nil {
		t.Fatal(err)
	}
	e.Eventually("the canary copy has no pods left", func(ctx context.Context) error {
		d := e.Deployment("web-canary")
		if *d.Spec.Replicas != 0 || d.Status.Replicas != 0 {
			return fmt.Errorf("canary spec %d, status %+v", *d.Spec.Replicas, d.Status)
		}
		return nil
	})
	if o := e.d.Observe(e.Ctx()); o.CanaryVersion != "" || o.StableVersion != v2.Template {
		t.Errorf("after the canary was retired: Observe = %+v", o)
	}
	if err := e.rolledOut(e.Ctx(), "web-stable", 4); err != nil {
		t.Errorf("stable copy after the rollout: %v", err)
	}
}

// releaseThroughTheCopies has the Rollout go: the user's Deployment serves
// again, the apex Service is handed to the user, and the garbage collector
// removes the rest of what pipit created.
func releaseThroughTheCopies(t *testing.T, e *env) {
	t.Helper()
	e.untilReady("Release", e.d.Release)
	// Removing pipit's annotation is a new generation of the Deployment,
	// which its controller observes in a moment.
	e.Eventually("the released Deployment serves", func(ctx context.Context) error { return e.rolledOut(ctx, "web", 4) })
	// Until the copies go, the apex Service reaches both the user's pods
	// and the stable copy's: the hand-over drops no capacity.
	e.Eventually("the apex Service lists the user's and the stable copy's pods", func(ctx context.Context) error {
		return e.wantEndpoints(ctx, "web", 8)
	})
	if _, ok := e.Deployment("web").Annotations[target.AnnotationOriginalReplicas]; ok {
		t.Error("the released Deployment keeps the original-replicas annotation")
	}
	if err := e.Client.Delete(e.Ctx(), e.rollout); err != nil {
		t.Fatal(err)
	}
	gone := []client.Object{
		&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web-stable"}},
		&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web-canary"}},
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web-stable"}},
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web-canary"}},
	}
	for _, obj := range gone {
		e.Eventually(fmt.Sprintf("%T %s is garbage collected", obj, obj.GetName()), func(ctx context.Context) error {
			err := e.Client.Get(ctx, e.Key(obj.GetName()), obj)
			if apierrors.IsNotFound(err) {
				return nil
			}
			if err == nil {
				err = errors.New("still there")
			}
			return err
		})
	}
	if err := e.rolledOut(e.Ctx(), "web", 4); err != nil {
		t.Errorf("the user's Deployment after the Rollout went: %v", err)
	}
	// The apex Service outlives the Rollout and reaches the user's pods
	// alone, so routes pointed back at it keep working.
	e.Eventually("the apex Service lists the user's pods alone", func(ctx context.Context) error {
		return e.wantEndpoints(ctx, "web", 4)
	})
}

func wantCanaryUp(o rollout.Observed, v v1alpha1.VersionRef) error {
	if o.CanaryVersion != v.Template || o.CanaryHealth != rollout.HealthUp {
		return fmt.Errorf("Observe = %+v, want canary %s up", o, v.Template)
	}
	return nil
}

func TestCanaryThatCannotBeScheduledIsDown(t *testing.T) {
	gateway := &v1alpha1.KubernetesSpec{Router: &v1alpha1.KubernetesRouter{GatewayAPI: &v1alpha1.GatewayAPIRouter{}}}
	e := newEnv(t, webDeployment("registry.example/web:v1", 1, 5), gateway)
	v1, err := e.d.Desired(e.Ctx())
	if err != nil {
		t.Fatal(err)
	}
	e.untilReady("Install", func(ctx context.Context) error { return e.d.Install(ctx, v1) })

	// No node matches: the canary's pods stay Pending until the
	// Deployment controller gives up after the 5s progress deadline.
	v2 := e.setImage(func(p *corev1.PodSpec) {
		p.Containers[0].Image = "registry.example/web:v2"
		p.NodeSelector = map[string]string{"pipit.dev/test-zone": "nowhere"}
	})
	if err := e.d.DeployCanary(e.Ctx(), v2); err != nil {
		t.Fatal(err)
	}
	if got := *e.Deployment("web-canary").Spec.Replicas; got != 1 {
		t.Errorf("canary runs %d replicas, want the stable copy's 1", got)
	}
	if o := e.d.Observe(e.Ctx()); o.CanaryHealth == rollout.HealthUp {
		t.Fatalf("an unschedulable canary is up: %+v", o)
	}
	e.Eventually("the canary is down for good", func(ctx context.Context) error {
		o := e.d.Observe(ctx)
		if o.CanaryVersion != v2.Template || o.CanaryHealth != rollout.HealthDown || !o.CanaryFailed {
			return fmt.Errorf("Observe = %+v", o)
		}
		if !strings.Contains(o.CanaryReason, "progress") {
			return fmt.Errorf("reason %q does not say why", o.CanaryReason)
		}
		return nil
	})
	if o := e.d.Observe(e.Ctx()); o.StableVersion != v1.Template {
		t.Errorf("a failing canary moved the stable version: %+v", o)
	}

	// The rollback retires it; the stable copy never stopped serving.
	if err := e.d.RetireCanary(e.Ctx(), v2); err != nil {
		t.Fatal(err)
	}
	e.Eventually("the failed canary has no pods left", func(ctx context.Context) error {
		images, err := e.podImages(ctx, map[string]string{target.LabelRole: target.RoleCanary})
		if err == nil && len(images) != 0 {
			err = fmt.Errorf("canary pods: %v", images)
		}
		return err
	})
	if err := e.rolledOut(e.Ctx(), "web-stable", 1); err != nil {
		t.Errorf("stable copy: %v", err)
	}
}

func TestAutoscaledDeploymentKeepsItsAutoscaler(t *testing.T) {
	e := newEnv(t, webDeployment("registry.example/web:v1", 1, 600), nil)
	users := &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: e.Namespace},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "web"},
			MinReplicas:    new(int32(2)),
			MaxReplicas:    5,
		},
	}
	if err := e.Client.Create(e.Ctx(), users); err != nil {
		t.Fatal(err)
	}
	// The autoscaler raises the user's Deployment to its minimum (it
	// needs no metrics for that): it works in this cluster.
	e.Eventually("the autoscaler scales the user's Deployment to 2", func(ctx context.Context) error {
		return e.rolledOut(ctx, "web", 2)
	})
	v1, err := e.d.Desired(e.Ctx())
	if err != nil {
		t.Fatal(err)
	}
	e.untilReady("Install", func(ctx context.Context) error { return e.d.Install(ctx, v1) })

	var copied autoscalingv2.HorizontalPodAutoscaler
	if err := e.Client.Get(e.Ctx(), e.Key("web-stable"), &copied); err != nil {
		t.Fatalf("the stable copy's autoscaler: %v", err)
	}
	if ref := copied.Spec.ScaleTargetRef; ref.Kind != "Deployment" || ref.Name != "web-stable" || *copied.Spec.MinReplicas != 2 || copied.Spec.MaxReplicas != 5 {
		t.Errorf("the stable copy's autoscaler: %+v", copied.Spec)
	}

	// The user raises the minimum: pipit copies it, the autoscaler scales
	// the stable copy, and pipit leaves the replicas to it.
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var h autoscalingv2.HorizontalPodAutoscaler
		if err := e.Client.Get(e.Ctx(), e.Key("web"), &h); err != nil {
			return err
		}
		h.Spec.MinReplicas = new(int32(3))
		return e.Client.Update(e.Ctx(), &h)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.d.Promote(e.Ctx(), v1); err != nil {
		t.Fatal(err)
	}
	e.Eventually("the autoscaler scales the stable copy to 3", func(ctx context.Context) error {
		return e.rolledOut(ctx, "web-stable", 3)
	})
	if err := e.d.Promote(e.Ctx(), v1); err != nil {
		t.Fatal(err)
	}
	if got := *e.Deployment("web-stable").Spec.Replicas; got != 3 {
		t.Errorf("Promote set the autoscaled stable copy to %d replicas, want the autoscaler's 3", got)
	}
	if got := *e.Deployment("web").Spec.Replicas; got != 0 {
		t.Errorf("the user's autoscaled Deployment has %d replicas, want 0 while pipit serves", got)
	}
}
