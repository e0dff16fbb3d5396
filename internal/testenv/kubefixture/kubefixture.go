// Package kubefixture holds what pipit's Kubernetes tests share on top of
// kubecluster's control plane: pipit's CRDs installed once per test
// binary, an admin client that knows pipit's types, a namespace per test
// (Env), the user's Deployment and its changes, Rollouts written as YAML,
// waits that say what they last saw, and a stand-in for the controller's
// answers to the CLI's commands (FakeController).
//
// A package whose tests use the cluster stops it after them in its
// TestMain, with Main.
package kubefixture

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/testenv/kubecluster"
)

const (
	// CallTimeout bounds one call to the API server.
	CallTimeout = 30 * time.Second
	// WaitTimeout bounds one wait for the cluster to act: Deployments on
	// the simulated kubelet become ready within seconds, but the machine
	// may be shared.
	WaitTimeout = 2 * time.Minute
	// CRDPath is pipit's Rollout CRD, relative to the repository's root.
	CRDPath = "deploy/kubernetes/crd/pipit.dev_rollouts.yaml"
	// CommandCRDPath is pipit's RolloutCommand CRD, relative to the
	// repository's root.
	CommandCRDPath = "deploy/kubernetes/crd/pipit.dev_rolloutcommands.yaml"
)

// TemplateCRDPaths are the CRDs of the metric templates, namespaced and
// cluster-scoped, relative to the repository's root.
var TemplateCRDPaths = []string{
	"deploy/kubernetes/crd/pipit.dev_rolloutmetrictemplates.yaml",
	"deploy/kubernetes/crd/pipit.dev_clusterrolloutmetrictemplates.yaml",
}

// pollEvery is the time between two looks of a wait.
const pollEvery = 100 * time.Millisecond

// Main runs the tests of a package that uses the shared cluster, stops
// the cluster after them and exits with their result: its TestMain.
func Main(m *testing.M) {
	code := m.Run()
	kubecluster.StopShared()
	os.Exit(code)
}

// crdOnce installs pipit's CRDs once per test binary: all its tests
// share the cluster.
var (
	crdOnce sync.Once
	crdErr  error
)

// Cluster returns the test binary's shared cluster (see kubecluster.Start)
// with pipit's CRDs (the Rollout's, the RolloutCommand's and the metric
// templates') installed and Established.
func Cluster(t testing.TB) *kubecluster.Cluster {
	t.Helper()
	c := kubecluster.Start(t)
	crdOnce.Do(func() { crdErr = installCRDs(c) })
	if crdErr != nil {
		t.Fatalf("kubefixture: install pipit's CRDs: %v", crdErr)
	}
	return c
}

func installCRDs(c *kubecluster.Cluster) error {
	root, err := repoRoot()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), WaitTimeout)
	defer cancel()
	var files []string
	for _, p := range append([]string{CRDPath, CommandCRDPath}, TemplateCRDPaths...) {
		files = append(files, filepath.Join(root, filepath.FromSlash(p)))
	}
	return c.InstallCRDs(ctx, files...)
}

// scheme knows what the tests read and write: Kubernetes' own types,
// pipit's Rollout and Gateway API routes. It is built here rather than
// taken from internal/runtime/kube, whose own tests use this package.
var scheme = func() *runtime.Scheme {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, v1alpha1.AddToScheme, gatewayv1.Install} {
		if err := add(s); err != nil {
			panic(fmt.Sprintf("kubefixture: the scheme: %v", err)) // the types are compiled in: cannot fail
		}
	}
	return s
}()

// Client returns an admin controller-runtime client of the cluster that
// knows Kubernetes' own types, pipit's Rollout and Gateway API routes.
func Client(t testing.TB, c *kubecluster.Cluster) client.Client {
	t.Helper()
	cl, err := client.New(c.RESTConfig(), client.Options{Scheme: scheme})
	if err != nil {
		t.Fatalf("kubefixture: client: %v", err)
	}
	return cl
}

// CallContext is a context for one call to the API server, or a few,
// ended after CallTimeout or with the test.
func CallContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), CallTimeout)
	t.Cleanup(cancel)
	return ctx
}
