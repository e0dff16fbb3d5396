package kubefixture

import (
	"net"
	"path/filepath"
	"testing"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Kubeconfig writes a kubeconfig file for the API server at server, with
// a token user and two contexts: "main", the current one, whose namespace
// is namespace, and "bare", with no namespace. It returns the file's path.
func Kubeconfig(t testing.TB, server, namespace string) string {
	t.Helper()
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["c"] = &clientcmdapi.Cluster{Server: server}
	cfg.AuthInfos["u"] = &clientcmdapi.AuthInfo{Token: "t"}
	cfg.Contexts["main"] = &clientcmdapi.Context{Cluster: "c", AuthInfo: "u", Namespace: namespace}
	cfg.Contexts["bare"] = &clientcmdapi.Context{Cluster: "c", AuthInfo: "u"}
	cfg.CurrentContext = "main"
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatalf("kubefixture: write kubeconfig: %v", err)
	}
	return path
}

// UnreachableServer returns the URL of a loopback address nothing listens
// on: an API server out of reach.
func UnreachableServer(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("kubefixture: %v", err)
	}
	server := "https://" + l.Addr().String()
	l.Close() // nothing listens there now
	return server
}
