package kube

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
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

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

var (
	crdResource = schema.GroupVersionResource{
		Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions",
	}
	rolloutResource = schema.GroupVersionResource{
		Group: "pipit.dev", Version: "v1alpha1", Resource: "rollouts",
	}
)

// crdOnce installs the Rollout CRD once per test binary: the cluster is
// shared by all tests.
var (
	crdOnce sync.Once
	crdErr  error
)

// clusterWithCRD returns the shared cluster with the generated Rollout CRD
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

// installCRD creates the committed CRD manifest and waits until the API
// server serves it.
func installCRD(c *kubecluster.Cluster) error {
	objs, err := readObjects(filepath.Join(repoRoot, "deploy/kubernetes/crd/pipit.dev_rollouts.yaml"))
	if err != nil {
		return err
	}
	if len(objs) != 1 || objs[0].GetKind() != "CustomResourceDefinition" {
		return fmt.Errorf("the CRD manifest holds %d objects, want one CustomResourceDefinition", len(objs))
	}
	crds := c.Dynamic().Resource(crdResource)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if _, err := crds.Create(ctx, objs[0], metav1.CreateOptions{}); err != nil {
		return err
	}
	var last error
	err = wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		crd, err := crds.Get(ctx, objs[0].GetName(), metav1.GetOptions{})
		if err != nil {
			last = err
			return false, nil
		}
		last = conditionTrue(crd, "Established")
		return last == nil, nil
	})
	if err != nil {
		return fmt.Errorf("CRD not Established: %w (last: %v)", err, last)
	}
	return nil
}

// conditionTrue fails unless the object's status has the condition True.
func conditionTrue(obj *unstructured.Unstructured, condition string) error {
	conds, _, _ := unstructured.NestedSlice(obj.Object, "status", "conditions")
	for _, c := range conds {
		m, ok := c.(map[string]any)
		if ok && m["type"] == condition {
			if m["status"] == "True" {
				return nil
			}
			return fmt.Errorf("%s is %v: %v", condition, m["status"], m["message"])
		}
	}
	return fmt.Errorf("no %s condition yet", condition)
}

// readObjects decodes every object of a multi-document YAML file.
func readObjects(path string) ([]*unstructured.Unstructured, error) {
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
			return objs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if len(obj.Object) > 0 {
			objs = append(objs, obj)
		}
	}
}

// callCtx is a context for one call to the API server.
func callCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	t.Cleanup(cancel)
	return ctx
}
