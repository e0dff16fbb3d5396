package kubecluster

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// NodeName is the cluster's one node, run by kwok. Pods scheduled on it
// turn Ready at once; no container is ever run.
const NodeName = "kwok-node-0"

// startAttempts bounds retries when another process takes a free port
// between our probe and the component's bind.
const startAttempts = 3

// launch starts a component listening on fresh loopback ports and waits
// until ready accepts it, retrying on other ports when one was taken.
func (c *Cluster) launch(ctx context.Context, name string, nports int,
	args func(ports []int) []string, ready func(ports []int) func(context.Context) error) ([]int, error) {
	for attempt := 1; ; attempt++ {
		ports, err := freePorts(nports)
		if err != nil {
			return nil, err
		}
		p, err := startProcess(c.dir, name, filepath.Join(c.tools.bin, name), args(ports)...)
		if err != nil {
			return nil, err
		}
		c.procs = append(c.procs, p)
		err = c.waitFor(ctx, name, ready(ports))
		if err == nil {
			return ports, nil
		}
		if attempt < startAttempts && strings.Contains(p.tail(), "address already in use") {
			p.kill()
			c.procs = c.procs[:len(c.procs)-1]
			continue
		}
		return nil, err
	}
}

// startEtcd runs etcd with a fresh data directory and returns its URL.
func (c *Cluster) startEtcd(ctx context.Context) (string, error) {
	url := func(port int) string { return "http://127.0.0.1:" + strconv.Itoa(port) }
	ports, err := c.launch(ctx, "etcd", 2,
		func(p []int) []string {
			return []string{
				"--name=default",
				"--data-dir=" + filepath.Join(c.dir, "etcd-data"),
				"--listen-client-urls=" + url(p[0]),
				"--advertise-client-urls=" + url(p[0]),
				"--listen-peer-urls=" + url(p[1]),
				"--initial-advertise-peer-urls=" + url(p[1]),
				"--initial-cluster=default=" + url(p[1]),
				"--logger=zap",
				"--log-outputs=stderr",
			}
		},
		func(p []int) func(context.Context) error {
			return func(ctx context.Context) error {
				return httpOK(ctx, http.DefaultClient, url(p[0])+"/health")
			}
		})
	if err != nil {
		return "", err
	}
	return url(ports[0]), nil
}

// startAPIServer runs kube-apiserver on etcd and waits for /readyz; it
// then sets the cluster's address, clients and kubeconfig.
func (c *Cluster) startAPIServer(ctx context.Context, etcdURL string) error {
	var httpClient *http.Client
	_, err := c.launch(ctx, "kube-apiserver", 1,
		func(p []int) []string {
			return []string{
				"--etcd-servers=" + etcdURL,
				"--bind-address=127.0.0.1",
				"--advertise-address=127.0.0.1",
				"--secure-port=" + strconv.Itoa(p[0]),
				"--cert-dir=" + filepath.Join(c.dir, "apiserver-certs"),
				"--tls-cert-file=" + c.creds.certFile,
				"--tls-private-key-file=" + c.creds.keyFile,
				"--token-auth-file=" + c.creds.tokensFile,
				"--authorization-mode=RBAC",
				"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
				"--service-account-key-file=" + c.creds.saKeyFile,
				"--service-account-signing-key-file=" + c.creds.saKeyFile,
				"--service-cluster-ip-range=10.96.0.0/16",
				// The default reconciler would publish 127.0.0.1 as the
				// kubernetes Service's endpoint, and validation refuses
				// loopback addresses in endpoints.
				"--endpoint-reconciler-type=none",
				"--profiling=false",
				// etcd 3.4.23 (Debian's) lacks the progress notifications
				// that streaming lists (WatchList) need. With the gate on,
				// the server still turns some plain watches into streaming
				// lists and fails them: kwok's watches then back off for
				// longer and longer, and pods turn Ready ever later.
				// With it off, clients fall back to LIST and WATCH.
				"--feature-gates=WatchList=false",
			}
		},
		func(p []int) func(context.Context) error {
			c.Host = "https://127.0.0.1:" + strconv.Itoa(p[0])
			c.config = c.clientConfig("admin")
			hc, err := rest.HTTPClientFor(c.config)
			if err != nil {
				return func(context.Context) error { return err }
			}
			httpClient = hc
			return func(ctx context.Context) error { return httpOK(ctx, httpClient, c.Host+"/readyz") }
		})
	if err != nil {
		return err
	}
	if c.client, err = kubernetes.NewForConfig(c.config); err != nil {
		return err
	}
	if c.dyn, err = dynamic.NewForConfig(c.config); err != nil {
		return err
	}
	c.Kubeconfig, err = c.writeKubeconfig("admin")
	return err
}

// startControllers runs kube-controller-manager and kube-scheduler. They
// serve no HTTPS (port 0) and run without leader election: one of each.
func (c *Cluster) startControllers() error {
	cmConfig, err := c.writeKubeconfig("kube-controller-manager")
	if err != nil {
		return err
	}
	schedConfig, err := c.writeKubeconfig("kube-scheduler")
	if err != nil {
		return err
	}
	cm, err := startProcess(c.dir, "kube-controller-manager", filepath.Join(c.tools.bin, "kube-controller-manager"),
		"--kubeconfig="+cmConfig,
		"--leader-elect=false",
		"--secure-port=0",
		"--service-account-private-key-file="+c.creds.saKeyFile,
		"--root-ca-file="+c.creds.caFile,
		"--cluster-name=pipit-test",
	)
	if err != nil {
		return err
	}
	c.procs = append(c.procs, cm)
	sched, err := startProcess(c.dir, "kube-scheduler", filepath.Join(c.tools.bin, "kube-scheduler"),
		"--kubeconfig="+schedConfig,
		"--leader-elect=false",
		"--secure-port=0",
	)
	if err != nil {
		return err
	}
	c.procs = append(c.procs, sched)
	return nil
}

// startKwok runs kwok on the nodes annotated kwok.x-k8s.io/node=fake, with
// stages that make them Ready and their pods Ready at once. Without an
// explicit node lease duration kwok renews no leases and pods stay Pending.
func (c *Cluster) startKwok() error {
	cfg, err := c.writeKubeconfig("kwok")
	if err != nil {
		return err
	}
	p, err := startProcess(c.dir, "kwok", filepath.Join(c.tools.bin, "kwok"),
		"--kubeconfig="+cfg,
		"--config="+c.tools.stages,
		"--manage-all-nodes=false",
		"--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
		"--node-lease-duration-seconds=40",
	)
	if err != nil {
		return err
	}
	c.procs = append(c.procs, p)
	return nil
}

// addNode registers the kwok node and waits until kwok reports it Ready.
func (c *Cluster) addNode(ctx context.Context) error {
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{
		Name: NodeName,
		Labels: map[string]string{
			"kubernetes.io/hostname": NodeName,
			"kubernetes.io/os":       "linux",
			"kubernetes.io/arch":     "amd64",
			"type":                   "kwok",
		},
		Annotations: map[string]string{"kwok.x-k8s.io/node": "fake"},
	}}
	callCtx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	if _, err := c.client.CoreV1().Nodes().Create(callCtx, node, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create node: %w", err)
	}
	return c.waitFor(ctx, "node "+NodeName+" Ready", func(ctx context.Context) error {
		n, err := c.client.CoreV1().Nodes().Get(ctx, NodeName, metav1.GetOptions{})
		if err != nil {
			return err
		}
		for _, cond := range n.Status.Conditions {
			if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
				return nil
			}
		}
		return fmt.Errorf("not Ready: %v", n.Status.Conditions)
	})
}

// clientConfig authenticates as one of the token file's clients.
func (c *Cluster) clientConfig(client string) *rest.Config {
	return &rest.Config{
		Host:            c.Host,
		BearerToken:     c.creds.tokens[client],
		TLSClientConfig: rest.TLSClientConfig{CAData: c.creds.caPEM},
		QPS:             100,
		Burst:           200,
	}
}

// writeKubeconfig writes a kubeconfig for one client and returns its path.
func (c *Cluster) writeKubeconfig(client string) (string, error) {
	const name = "pipit-test"
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[name] = &clientcmdapi.Cluster{Server: c.Host, CertificateAuthorityData: c.creds.caPEM}
	cfg.AuthInfos[client] = &clientcmdapi.AuthInfo{Token: c.creds.tokens[client]}
	cfg.Contexts[name] = &clientcmdapi.Context{Cluster: name, AuthInfo: client, Namespace: "default"}
	cfg.CurrentContext = name
	path := filepath.Join(c.dir, client+".kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		return "", fmt.Errorf("write kubeconfig: %w", err)
	}
	return path, nil
}

// httpOK fails unless url answers 200.
func httpOK(ctx context.Context, client *http.Client, url string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 2000))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s: %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}

// freePorts finds n distinct free loopback ports, holding all of them
// open together so the kernel does not hand out one twice.
func freePorts(n int) ([]int, error) {
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
