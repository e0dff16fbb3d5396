package e2e

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pipit-dev/pipit/internal/proxy"
)

// versionServer answers every path, health checks included, with its
// version.
func versionServer(t testing.TB, version string) string {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, version)
	}))
	t.Cleanup(s.Close)
	return s.URL
}

// example copies examples/NAME with each old string replaced by its new
// one, and returns the copy's path.
func example(t testing.TB, name string, oldNew ...string) string {
	t.Helper()
	src, err := os.ReadFile(filepath.Join("..", "examples", name))
	if err != nil {
		t.Fatal(err)
	}
	doc := strings.NewReplacer(oldNew...).Replace(string(src))
	if doc == string(src) {
		t.Fatalf("examples/%s: nothing replaced; did the example change?", name)
	}
	file := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(file, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

// TestOneDaemonServesRolloutsOnTwoPorts runs the manual and the hybrid
// examples, each on its own port with no host or path prefix, in one
// `pipit up`: both listeners answer, each from its own rollout, and only
// the listener whose rollout turned versionHeader off keeps quiet about
// the version.
func TestOneDaemonServesRolloutsOnTwoPorts(t *testing.T) {
	manualAddr, hybridAddr := freePort(t), freePort(t)
	manual := example(t, "manual.yaml",
		"127.0.0.1:8082", manualAddr,
		"http://127.0.0.1:9021", versionServer(t, "payments-stable"),
		"http://127.0.0.1:9022", versionServer(t, "payments-canary"),
		"  service:\n", "  service:\n    versionHeader: false\n")
	hybrid := example(t, "hybrid.yaml",
		"127.0.0.1:8083", hybridAddr,
		"http://127.0.0.1:9031", versionServer(t, "search-stable"),
		"http://127.0.0.1:9032", versionServer(t, "search-canary"))
	startUpFiles(t, t.TempDir(), manual, hybrid)

	client := &http.Client{Timeout: 10 * time.Second}
	for _, tt := range []struct {
		addr, service string
		announced     bool
	}{
		{manualAddr, "payments", false},
		{hybridAddr, "search", true},
	} {
		resp, err := client.Get("http://" + tt.addr + "/")
		if err != nil {
			t.Fatalf("%s listener: %v", tt.service, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(string(body), tt.service+"-") {
			t.Errorf("%s listener answered %d %q", tt.service, resp.StatusCode, body)
		}
		version := resp.Header.Get(proxy.DefaultVersionHeader)
		if announced := version != ""; announced != tt.announced || (announced && !strings.HasPrefix(version, "http://127.0.0.1:")) {
			t.Errorf("%s listener: %s %q, want it set: %v", tt.service, proxy.DefaultVersionHeader, version, tt.announced)
		}
	}
}

// TestListenerSettingsRefusedWithExit2 checks that a bad listener setting
// stops `pipit validate`, and a disagreement between two rollouts on one
// listen address stops `pipit up`, with exit 2 and the file, field or
// rollouts named.
func TestListenerSettingsRefusedWithExit2(t *testing.T) {
	listen := freePort(t)
	rollout := func(name, service string) string {
		return fmt.Sprintf("apiVersion: pipit.dev/v1alpha1\nkind: Rollout\nmetadata: {name: %s}\nspec:\n"+
			"  service:\n    listen: %s\n    stable: {url: http://127.0.0.1:9001}\n%s"+
			"  strategy: {steps: [{setWeight: 10}]}\n", name, listen, service)
	}
	write := func(name, doc string) string {
		path := filepath.Join(t.TempDir(), name)
		if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}

	bad := write("bad.yaml", rollout("web", "    trustedProxies: [10.0.0.1, 10.0.0.0/33]\n    limits: {maxConnections: 0}\n"))
	r := pipit(t, 30*time.Second, "validate", bad)
	out := r.stdout + r.stderr
	for _, want := range []string{
		bad + `:8:32: spec.service.trustedProxies[1]: "10.0.0.0/33" is not an IP address or CIDR prefix`,
		bad + ":9:14: spec.service.limits.maxConnections: must be positive, not 0",
	} {
		if r.code != 2 || !strings.Contains(out, want) {
			t.Errorf("pipit validate: exit %d, output:\n%s\nwant exit 2 and %s", r.code, out, want)
		}
	}

	web := write("web.yaml", rollout("web", "    host: web.example.com\n"))
	api := write("api.yaml", rollout("api", "    pathPrefix: /api\n    versionHeader: false\n"))
	r = pipit(t, 30*time.Second, "up", "-f", web, "-f", api, "--state-dir", t.TempDir(), "--api", "127.0.0.1:0")
	want := fmt.Sprintf(`%s: rollout "api" shares %s with rollout "web" (%s) but not its versionHeader`, api, listen, web)
	if out := r.stdout + r.stderr; r.code != 2 || !strings.Contains(out, want) {
		t.Errorf("pipit up: exit %d, output:\n%s\nwant exit 2 and %s", r.code, out, want)
	}
}
