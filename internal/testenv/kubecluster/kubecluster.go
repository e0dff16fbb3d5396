// Package kubecluster runs a real Kubernetes control plane for tests: etcd,
// kube-apiserver, kube-controller-manager and kube-scheduler, with kwok as
// a simulated kubelet so Deployments get scheduled, Ready pods without a
// container runtime. The Gateway API and Istio CRDs are installed.
//
// One cluster serves a whole test binary: Start starts it on first use, and
// TestMain stops it after the tests:
//
//	func TestMain(m *testing.M) {
//		code := m.Run()
//		kubecluster.StopShared()
//		os.Exit(code)
//	}
//
// The binaries come from hack/install-kube-tools.sh, which builds them
// into a cache outside the work tree the first time (about 15 minutes).
package kubecluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// installScript is the repository's installer, relative to its root.
const installScript = "hack/install-kube-tools.sh"

const (
	// installTimeout covers a cold build of the control plane on two cores.
	installTimeout = 40 * time.Minute
	pollEvery      = 200 * time.Millisecond
	callTimeout    = 30 * time.Second
)

// Cluster is a running control plane.
type Cluster struct {
	// Kubeconfig is the path of an admin kubeconfig for the cluster, for
	// kubectl and for programs under test.
	Kubeconfig string
	// Host is the API server's URL, such as https://127.0.0.1:40123.
	Host string

	dir    string
	tools  toolPaths
	creds  *credentials
	procs  []*process
	config *rest.Config
	client kubernetes.Interface
	dyn    dynamic.Interface
}

var (
	sharedOnce    sync.Once
	sharedMu      sync.Mutex
	sharedCluster *Cluster
	sharedErr     error
)

// Start returns the test binary's cluster, starting it on first use. It
// fails the test when the cluster cannot run, with the reason and the end
// of each component's log. When the test fails, the logs' ends are logged.
func Start(t testing.TB) *Cluster {
	t.Helper()
	sharedOnce.Do(func() {
		c, err := start()
		sharedMu.Lock()
		sharedCluster, sharedErr = c, err
		sharedMu.Unlock()
	})
	sharedMu.Lock()
	c, err := sharedCluster, sharedErr
	sharedMu.Unlock()
	if err != nil {
		t.Fatalf("kubecluster: %v", err)
	}
	if c == nil {
		t.Fatal("kubecluster: the shared cluster was stopped")
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("kubecluster: end of the control plane's logs:%s", tails(c.procs))
		}
	})
	return c
}

// StopShared stops the test binary's cluster, if one was started, killing
// its processes and removing its files. Call it from TestMain after m.Run.
func StopShared() {
	sharedMu.Lock()
	c := sharedCluster
	sharedCluster, sharedErr = nil, errors.New("the shared cluster was stopped")
	sharedMu.Unlock()
	if c != nil {
		c.stop()
	}
}

// RESTConfig returns a new copy of the admin client configuration.
func (c *Cluster) RESTConfig() *rest.Config {
	return rest.CopyConfig(c.config)
}

// Clientset is a typed admin client for the cluster.
func (c *Cluster) Clientset() kubernetes.Interface {
	return c.client
}

// Dynamic is an untyped admin client for the cluster, for custom resources.
func (c *Cluster) Dynamic() dynamic.Interface {
	return c.dyn
}

// Namespace creates a fresh namespace for the test, deleted when the test
// ends. It returns once the namespace's default service account exists, so
// pods can be created there at once.
func (c *Cluster) Namespace(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	ns, err := c.client.CoreV1().Namespaces().Create(ctx, namespaceFor(t.Name()), metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("kubecluster: create namespace: %v", err)
	}
	name := ns.Name
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		defer cancel()
		if err := c.client.CoreV1().Namespaces().Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
			t.Errorf("kubecluster: delete namespace %s: %v", name, err)
		}
	})
	err = wait.PollUntilContextCancel(ctx, pollEvery, true, func(ctx context.Context) (bool, error) {
		_, err := c.client.CoreV1().ServiceAccounts(name).Get(ctx, "default", metav1.GetOptions{})
		return err == nil, nil
	})
	if err != nil {
		t.Fatalf("kubecluster: namespace %s has no default service account: %v", name, err)
	}
	return name
}

// start installs what is missing and brings the cluster up. On failure it
// stops what it started and returns the error with the end of every log.
func start() (*Cluster, error) {
	tools, err := install()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "pipit-kube-")
	if err != nil {
		return nil, err
	}
	c := &Cluster{dir: dir, tools: tools}
	if err := c.boot(); err != nil {
		err = fmt.Errorf("%w\nend of the control plane's logs:%s", err, tails(c.procs))
		c.stop()
		return nil, err
	}
	return c, nil
}

// boot starts each component in order, waiting for each to be usable.
func (c *Cluster) boot() error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	creds, err := newCredentials(c.dir)
	if err != nil {
		return fmt.Errorf("credentials: %w", err)
	}
	c.creds = creds
	etcdURL, err := c.startEtcd(ctx)
	if err != nil {
		return err
	}
	if err := c.startAPIServer(ctx, etcdURL); err != nil {
		return err
	}
	if err := c.startControllers(); err != nil {
		return err
	}
	if err := c.startKwok(); err != nil {
		return err
	}
	if err := c.addNode(ctx); err != nil {
		return err
	}
	return c.installCRDs(ctx)
}

// stop kills every process and removes the cluster's files.
func (c *Cluster) stop() {
	for i := len(c.procs) - 1; i >= 0; i-- {
		c.procs[i].kill()
	}
	_ = os.RemoveAll(c.dir)
}

// waitFor polls check until it succeeds, ctx ends, or a process dies.
func (c *Cluster) waitFor(ctx context.Context, what string, check func(context.Context) error) error {
	var last error
	err := wait.PollUntilContextCancel(ctx, pollEvery, true, func(ctx context.Context) (bool, error) {
		for _, p := range c.procs {
			if err := p.running(); err != nil {
				return false, err
			}
		}
		last = check(ctx)
		return last == nil, nil
	})
	if err != nil {
		if last != nil {
			return fmt.Errorf("waiting for %s: %w (last: %v)", what, err, last)
		}
		return fmt.Errorf("waiting for %s: %w", what, err)
	}
	return nil
}

// toolPaths is what the install script provides.
type toolPaths struct {
	bin    string // etcd, kube-apiserver, ..., kwok
	stages string // kwok's stage file
	crds   string // crds/<source>/*.yaml
}

// installMu keeps the tests of one binary from installing twice; the
// script itself locks against other test binaries.
var installMu sync.Mutex

// install runs the install script, which returns at once when everything
// is in place, and takes the bin directory from its output.
func install() (toolPaths, error) {
	installMu.Lock()
	defer installMu.Unlock()
	root, err := repoRoot()
	if err != nil {
		return toolPaths{}, fmt.Errorf("cannot find %s: %w", installScript, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), installTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(root, installScript))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return toolPaths{}, fmt.Errorf("`bash %s` failed (it needs root, Debian's apt and the Go module proxy): %v\n%s",
			installScript, err, lastLines(stderr.String(), 40))
	}
	bin := strings.TrimSpace(string(out))
	cache := filepath.Dir(bin)
	return toolPaths{
		bin:    bin,
		stages: filepath.Join(cache, "kwok", "stages.yaml"),
		crds:   filepath.Join(cache, "crds"),
	}, nil
}

// repoRoot is the nearest directory above the working directory (a test's
// package directory) holding the install script.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, installScript)); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("not found above the working directory")
		}
		dir = parent
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// namespaceFor builds a namespace with a name prefix taken from the test's
// name (lower case, dashes for anything else) and a random suffix.
func namespaceFor(testName string) *corev1.Namespace {
	var b strings.Builder
	for _, r := range strings.ToLower(testName) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		case b.Len() > 0 && !strings.HasSuffix(b.String(), "-"):
			b.WriteByte('-')
		}
	}
	prefix := strings.Trim(b.String(), "-")
	if len(prefix) > 40 {
		prefix = strings.TrimRight(prefix[:40], "-")
	}
	if prefix == "" {
		prefix = "test"
	}
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: prefix + "-"}}
}
