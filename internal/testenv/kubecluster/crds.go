package kubecluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

var crdResource = schema.GroupVersionResource{
	Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions",
}

// installCRDs creates every CustomResourceDefinition in the cached
// manifests (Gateway API standard channel, Istio) and waits until each is
// Established, so tests can create those resources at once. Other kinds in
// the manifests are left out.
func (c *Cluster) installCRDs(ctx context.Context) error {
	files, err := filepath.Glob(filepath.Join(c.tools.crds, "*", "*.yaml"))
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return fmt.Errorf("no CRD manifests under %s", c.tools.crds)
	}
	sort.Strings(files)
	return c.installCRDFiles(ctx, files)
}

// InstallCRDs creates the CustomResourceDefinitions of the manifest files
// (those that exist already are kept) and waits until each is
// Established: a test installs pipit's own CRD with it.
func (c *Cluster) InstallCRDs(ctx context.Context, files ...string) error {
	return c.installCRDFiles(ctx, files)
}

func (c *Cluster) installCRDFiles(ctx context.Context, files []string) error {
	var names []string
	for _, f := range files {
		crds, err := readCRDs(f)
		if err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		for _, crd := range crds {
			callCtx, cancel := context.WithTimeout(ctx, callTimeout)
			_, err := c.dyn.Resource(crdResource).Create(callCtx, crd, metav1.CreateOptions{})
			cancel()
			if err != nil && !apierrors.IsAlreadyExists(err) {
				return fmt.Errorf("create CRD %s from %s: %w", crd.GetName(), f, err)
			}
			names = append(names, crd.GetName())
		}
	}
	for _, name := range names {
		err := c.waitFor(ctx, "CRD "+name+" Established", func(ctx context.Context) error {
			crd, err := c.dyn.Resource(crdResource).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			return established(crd)
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// readCRDs decodes the CustomResourceDefinitions of a multi-document file.
func readCRDs(path string) ([]*unstructured.Unstructured, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	dec := utilyaml.NewYAMLOrJSONDecoder(f, 64*1024)
	var crds []*unstructured.Unstructured
	for {
		obj := &unstructured.Unstructured{}
		err := dec.Decode(&obj.Object)
		if errors.Is(err, io.EOF) {
			return crds, nil
		}
		if err != nil {
			return nil, err
		}
		if obj.GetAPIVersion() == "apiextensions.k8s.io/v1" && obj.GetKind() == "CustomResourceDefinition" {
			crds = append(crds, obj)
		}
	}
}

// established fails unless the CRD's Established condition is True.
func established(crd *unstructured.Unstructured) error {
	conds, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
	for _, c := range conds {
		m, ok := c.(map[string]any)
		if ok && m["type"] == "Established" && m["status"] == "True" {
			return nil
		}
	}
	return fmt.Errorf("CRD %s not Established yet", crd.GetName())
}
