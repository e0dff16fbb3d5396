package kubetest

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

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	ctrlclient "sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/testenv/kubecluster"
)

// repoRoot is the repository's root, seen from this package's directory,
// where `go test` runs the tests.
const repoRoot = "../../.."

// callTimeout bounds one call to the API server; waitTimeout bounds a wait
// for the server to act on one.
const (
	callTimeout = 30 * time.Second
	waitTimeout = time.Minute
)

var crdResource = schema.GroupVersionResource{
	Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions",
}

// crdOnce installs the Rollout CRD once per test binary: the cluster is
// shared by all tests.
var (
	crdOnce sync.Once
	crdErr  error
)

// clusterWithCRD returns the shared cluster with the committed Rollout CRD
// installed and Established.
func clusterWithCRD(t *testing.T) *kubecluster.Cluster {
	t.Helper()
	c := kubecluster.Start(t)
	crdOnce.Do(func() { crdErr = installCRD(c) })
	if crdErr != nil {
		t.Fatalf("install the Rollout CRD: %v", crdErr)
	}
	return c
}

// installCRD creates the CRD manifest and waits until the API server
// serves it.
func installCRD(c *kubecluster.Cluster) error {
	obj, err := readCRD(filepath.Join(repoRoot, "deploy/kubernetes/crd/pipit.dev_rollouts.yaml"))
	if err != nil {
		return err
	}
	crds := c.Dynamic().Resource(crdResource)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if _, err := crds.Create(ctx, obj, metav1.CreateOptions{}); err != nil {
		return err
	}
	var last error
	err = wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		crd, err := crds.Get(ctx, obj.GetName(), metav1.GetOptions{})
		if err != nil {
			last = err
			return false, nil
		}
		last = established(crd)
		return last == nil, nil
	})
	if err != nil {
		return fmt.Errorf("CRD not Established: %w (last: %v)", err, last)
	}
	return nil
}

// established fails unless the CRD's Established condition is True.
func established(crd *unstructured.Unstructured) error {
	conds, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
	for _, c := range conds {
		if m, ok := c.(map[string]any); ok && m["type"] == "Established" {
			if m["status"] == "True" {
				return nil
			}
			return fmt.Errorf("Established is %v: %v", m["status"], m["message"])
		}
	}
	return errors.New("no Established condition yet")
}

// readCRD decodes the one CustomResourceDefinition of a manifest.
func readCRD(path string) (*unstructured.Unstructured, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	dec := utilyaml.NewYAMLOrJSONDecoder(f, 64*1024)
	var objs []*unstructured.Unstructured
	for {
		obj := &unstructured.Unstructured{}
		err := dec.Decode(&obj.Object)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if len(obj.Object) > 0 {
			objs = append(objs, obj)
		}
	}
	if len(objs) != 1 || objs[0].GetKind() != "CustomResourceDefinition" {
		return nil, fmt.Errorf("%s holds %d objects, want one CustomResourceDefinition", path, len(objs))
	}
	return objs[0], nil
}

// adminClient is a controller-runtime client of the cluster that knows
// Rollouts, for the tests' own reads and writes.
func adminClient(t *testing.T, c *kubecluster.Cluster) ctrlclient.Client {
	t.Helper()
	s := runtime.NewScheme()
	if err := v1alpha1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	cl, err := ctrlclient.New(c.RESTConfig(), ctrlclient.Options{Scheme: s})
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

// callCtx is a context for one call to the API server.
func callCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	t.Cleanup(cancel)
	return ctx
}

// createRollout creates a Rollout of a Deployment named like it, with two
// steps, then writes st through the status subresource, as the controller
// would.
func createRollout(t *testing.T, cl ctrlclient.Client, ns, name string, st v1alpha1.RolloutStatus) *v1alpha1.Rollout {
	t.Helper()
	w := v1alpha1.PercentOf(10)
	r := &v1alpha1.Rollout{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: v1alpha1.RolloutSpec{
			TargetRef: &v1alpha1.TargetRef{Name: name},
			Strategy:  v1alpha1.Strategy{Steps: []v1alpha1.Step{{SetWeight: &w}, {Pause: &v1alpha1.PauseStep{}}}},
		},
	}
	if err := cl.Create(callCtx(t), r); err != nil {
		t.Fatalf("create rollout %s: %v", name, err)
	}
	r.Status = st
	if err := cl.Status().Update(callCtx(t), r); err != nil {
		t.Fatalf("write the status of rollout %s: %v", name, err)
	}
	return r
}

func getRollout(t *testing.T, cl ctrlclient.Client, ns, name string) *v1alpha1.Rollout {
	t.Helper()
	r := &v1alpha1.Rollout{}
	if err := cl.Get(callCtx(t), ctrlclient.ObjectKey{Namespace: ns, Name: name}, r); err != nil {
		t.Fatalf("get rollout %s: %v", name, err)
	}
	return r
}

// progressing is the status of a rollout at its first step.
func progressing() v1alpha1.RolloutStatus {
	return v1alpha1.RolloutStatus{
		Phase:        v1alpha1.PhaseProgressing,
		Message:      "routing 10% to canary nginx:1.1",
		Stable:       &v1alpha1.VersionRef{Version: "nginx:1.0", Template: "5d8f9c"},
		Canary:       &v1alpha1.VersionRef{Version: "nginx:1.1", Template: "7b6c4d"},
		CanaryWeight: v1alpha1.PercentOf(10),
	}
}

// fakeController plays the pipit controller's part for one rollout until
// the test ends: it takes the requests out of status.commands and answers
// each in status.commandResults with what decide says, in one write, with
// the resourceVersion it read.
type fakeController struct {
	cl     ctrlclient.Client
	key    ctrlclient.ObjectKey
	decide func(st *v1alpha1.RolloutStatus, req v1alpha1.CommandRequest) string

	mu   sync.Mutex
	seen []v1alpha1.CommandRequest
}

func (f *fakeController) run(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			f.once(ctx)
			time.Sleep(50 * time.Millisecond)
		}
	}()
}

func (f *fakeController) once(ctx context.Context) {
	r := &v1alpha1.Rollout{}
	if err := f.cl.Get(ctx, f.key, r); err != nil || len(r.Status.Commands) == 0 {
		return
	}
	reqs := r.Status.Commands
	for _, req := range reqs {
		r.Status.CommandResults = append(r.Status.CommandResults, v1alpha1.CommandResult{ID: req.ID, Error: f.decide(&r.Status, req)})
	}
	r.Status.Commands = nil
	if f.cl.Status().Update(ctx, r) != nil {
		return // a conflict: try again next time
	}
	f.mu.Lock()
	f.seen = append(f.seen, reqs...)
	f.mu.Unlock()
}

func (f *fakeController) requests() []v1alpha1.CommandRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]v1alpha1.CommandRequest(nil), f.seen...)
}
