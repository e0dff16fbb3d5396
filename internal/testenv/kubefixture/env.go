package kubefixture

import (
	"context"
	"errors"
	"fmt"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/testenv/kubecluster"
)

// Env is one test's share of the cluster: a namespace of its own and an
// admin client. Its methods fail the test when the API server refuses
// them, so they run on the test's goroutine. A unit test may build one
// over a fake client, with no Cluster.
type Env struct {
	// T is the test the Env fails and cleans up after.
	T *testing.T
	// Cluster is the test binary's cluster, with pipit's Rollout CRD.
	Cluster *kubecluster.Cluster
	// Namespace is the test's own, deleted when it ends.
	Namespace string
	// Client is an admin client of the cluster (see Client).
	Client client.Client
}

// New returns the test's Env: the shared cluster with pipit's CRD, a fresh
// namespace and a client.
func New(t *testing.T) *Env {
	t.Helper()
	c := Cluster(t)
	return &Env{T: t, Cluster: c, Namespace: c.Namespace(t), Client: Client(t, c)}
}

// Ctx is a context for one call to the API server, or a few.
func (e *Env) Ctx() context.Context { return CallContext(e.T) }

// Key names an object of the test's namespace.
func (e *Env) Key(name string) types.NamespacedName {
	return types.NamespacedName{Namespace: e.Namespace, Name: name}
}

// Create creates obj in the test's namespace.
func (e *Env) Create(obj client.Object) {
	e.T.Helper()
	obj.SetNamespace(e.Namespace)
	if err := e.Client.Create(e.Ctx(), obj); err != nil {
		e.T.Fatalf("create %T %s: %v", obj, obj.GetName(), err)
	}
}

// CreateDeployment creates the user's Deployment (see Deployment).
func (e *Env) CreateDeployment(name, image string, replicas int32) {
	e.T.Helper()
	e.Create(Deployment(name, image, replicas))
}

// UpdateDeployment applies change to a Deployment, as UpdateDeployment
// does.
func (e *Env) UpdateDeployment(name string, change func(*appsv1.Deployment)) {
	e.T.Helper()
	if err := UpdateDeployment(e.Ctx(), e.Client, e.Key(name), change); err != nil {
		e.T.Fatalf("update Deployment %s: %v", name, err)
	}
}

// SetImage changes the user's Deployment as `kubectl set image` does.
func (e *Env) SetImage(name, image string) {
	e.T.Helper()
	if err := SetImage(e.Ctx(), e.Client, e.Key(name), image); err != nil {
		e.T.Fatalf("set image of %s: %v", name, err)
	}
}

// CreateRollout creates the Rollout RolloutYAML(name, spec) describes,
// decoded strictly (see ParseRollout), and returns it as created.
func (e *Env) CreateRollout(name, spec string) *v1alpha1.Rollout {
	e.T.Helper()
	r, err := ParseRollout(RolloutYAML(name, spec))
	if err != nil {
		e.T.Fatal(err)
	}
	e.Create(r)
	return r
}

// CreateWebRollout creates what most rollout tests start from: the user's
// Deployment "web", replicas of registry.example/web:v1, and the Rollout
// "web" of it, with spec (see CreateRollout).
func (e *Env) CreateWebRollout(replicas int32, spec string) *v1alpha1.Rollout {
	e.T.Helper()
	e.CreateDeployment("web", "registry.example/web:v1", replicas)
	return e.CreateRollout("web", spec)
}

// Found reads the object name of the test's namespace into obj, and
// reports false when it does not exist.
func (e *Env) Found(name string, obj client.Object) bool {
	e.T.Helper()
	err := e.Client.Get(e.Ctx(), e.Key(name), obj)
	if apierrors.IsNotFound(err) {
		return false
	}
	if err != nil {
		e.T.Fatalf("get %T %s: %v", obj, name, err)
	}
	return true
}

// Get reads the object name of e's namespace into obj, failing the test
// when it does not exist, and returns obj.
func Get[T client.Object](e *Env, name string, obj T) T {
	e.T.Helper()
	if !e.Found(name, obj) {
		e.T.Fatalf("%T %s does not exist", obj, name)
	}
	return obj
}

// Rollout reads a Rollout, which must exist.
func (e *Env) Rollout(name string) *v1alpha1.Rollout {
	e.T.Helper()
	return Get(e, name, &v1alpha1.Rollout{})
}

// Deployment reads a Deployment, which must exist.
func (e *Env) Deployment(name string) *appsv1.Deployment {
	e.T.Helper()
	return Get(e, name, &appsv1.Deployment{})
}

// Eventually polls cond until it returns nil; when WaitTimeout passes
// first, it fails the test with what it waited for and cond's last error.
func (e *Env) Eventually(what string, cond func(ctx context.Context) error) {
	e.T.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), WaitTimeout)
	defer cancel()
	last := errors.New("not checked yet")
	err := wait.PollUntilContextCancel(ctx, pollEvery, true, func(ctx context.Context) (bool, error) {
		last = cond(ctx)
		return last == nil, nil
	})
	if err != nil {
		e.T.Fatalf("%s: %v\nlast: %v", what, err, last)
	}
}

// WaitRollout waits until cond holds for a Rollout, and returns it as
// cond saw it. On a timeout it fails with the Rollout's last status and
// history.
func (e *Env) WaitRollout(name, what string, cond func(*v1alpha1.Rollout) bool) *v1alpha1.Rollout {
	e.T.Helper()
	return waitFor(e, "Rollout", name, what, cond, func(r *v1alpha1.Rollout) string {
		s := r.Status
		return fmt.Sprintf("phase=%s step=%d weight=%s message=%q\nhistory:\n%s",
			s.Phase, s.CurrentStep, s.CanaryWeight, s.Message, History(r))
	})
}

// WaitPhase waits until a Rollout is in phase p, and returns it.
func (e *Env) WaitPhase(name string, p v1alpha1.Phase) *v1alpha1.Rollout {
	e.T.Helper()
	return e.WaitRollout(name, "phase "+string(p), func(r *v1alpha1.Rollout) bool { return r.Status.Phase == p })
}

// WaitInstalled waits until a Rollout installed its first version (its
// status names a stable one), and returns it.
func (e *Env) WaitInstalled(name string) *v1alpha1.Rollout {
	e.T.Helper()
	return e.WaitRollout(name, "installed", func(r *v1alpha1.Rollout) bool { return r.Status.Stable != nil })
}

// WaitService waits until a Service exists, and returns it.
func (e *Env) WaitService(name string) *corev1.Service {
	e.T.Helper()
	return waitFor(e, "Service", name, "it to exist", func(*corev1.Service) bool { return true },
		func(s *corev1.Service) string { return s.Name })
}

// WaitDeployment waits until cond holds for a Deployment, and returns it
// as cond saw it. On a timeout it fails with its last replicas and status.
func (e *Env) WaitDeployment(name, what string, cond func(*appsv1.Deployment) bool) *appsv1.Deployment {
	e.T.Helper()
	return waitFor(e, "Deployment", name, what, cond, func(d *appsv1.Deployment) string {
		return fmt.Sprintf("spec.replicas=%d status=%+v", ptr.Deref(d.Spec.Replicas, 1), d.Status)
	})
}

// waitFor polls the object name of the kind until cond holds for it,
// reading a fresh copy each time, so no field of an earlier read lingers.
// describe tells what the object last looked like.
func waitFor[T any, PT interface {
	*T
	client.Object
}](e *Env, kind, name, what string, cond func(PT) bool, describe func(PT) string) PT {
	e.T.Helper()
	var last PT
	e.Eventually(fmt.Sprintf("%s %s: waiting for %s", kind, name, what), func(ctx context.Context) error {
		obj := PT(new(T))
		if err := e.Client.Get(ctx, e.Key(name), obj); err != nil {
			return err
		}
		last = obj
		if !cond(obj) {
			return errors.New(describe(obj))
		}
		return nil
	})
	return last
}
