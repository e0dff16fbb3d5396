package standalone

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/proxy"
	"github.com/pipit-dev/pipit/internal/sampleapp"
)

func TestSeveralServicesShareOneListener(t *testing.T) {
	shop := app(t, sampleapp.Config{Version: "shop-v1"})
	api := app(t, sampleapp.Config{Version: "api-v1"})
	listen := freeAddr(t)
	doc := fmt.Sprintf(`apiVersion: pipit.dev/v1alpha1
kind: Rollout
metadata: {name: shop}
spec:
  service: {listen: %[1]s, host: shop.example.com, stable: {url: %[2]q, version: shop-v1}}
  strategy: {steps: [{setWeight: 10}]}
---
apiVersion: pipit.dev/v1alpha1
kind: Rollout
metadata: {name: api}
spec:
  service: {listen: %[1]s, pathPrefix: /api, stable: {url: %[3]q, version: api-v1}}
  strategy: {steps: [{setWeight: 10}]}
`, listen, shop.URL, api.URL)
	startDaemon(t, t.TempDir(), []byte(doc))
	ask := func(host, path string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, "http://"+listen+path, nil)
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("X-Pipit-Version")
	}
	if code, v := ask("shop.example.com", "/"); code != 200 || v != "shop-v1" {
		t.Errorf("shop host: %d %s", code, v)
	}
	// The api rollout takes /api on any host (the sample app itself only
	// serves /, hence its 404: what matters is who answered).
	if _, v := ask("other.example.com", "/api/orders"); v != "api-v1" {
		t.Errorf("/api/orders answered by %q, want api-v1", v)
	}
	if code, v := ask("other.example.com", "/"); code != 404 {
		t.Errorf("unrouted request: %d %s, want 404", code, v)
	}
}

func TestSharedListenerNeedsDistinctRoutes(t *testing.T) {
	doc := `apiVersion: pipit.dev/v1alpha1
kind: Rollout
metadata: {name: a}
spec:
  service: {listen: 127.0.0.1:18080, stable: {url: "http://127.0.0.1:1"}}
  strategy: {steps: [{setWeight: 10}]}
---
apiVersion: pipit.dev/v1alpha1
kind: Rollout
metadata: {name: b}
spec:
  service: {listen: 127.0.0.1:18080, stable: {url: "http://127.0.0.1:2"}}
  strategy: {steps: [{setWeight: 10}]}
`
	_, err := Start(context.Background(), Config{Sources: []Source{{File: "two.yaml", Data: []byte(doc)}},
		StateDir: t.TempDir(), APIAddr: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler)})
	var cfgErr *ConfigError
	if !errors.As(err, &cfgErr) || !strings.Contains(err.Error(), `give each its own host or pathPrefix`) {
		t.Fatalf("err %v", err)
	}
}

// svcRollout is a rollout of the given service, for groupFrontends: it
// reads nothing but the name and the service.
func svcRollout(name string, svc v1alpha1.ServiceSpec) *v1alpha1.Rollout {
	return &v1alpha1.Rollout{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1alpha1.RolloutSpec{Service: &svc}}
}

func TestGroupFrontends(t *testing.T) {
	const a, b = "127.0.0.1:8082", "127.0.0.1:8083"
	n := func(i int32) *int32 { return &i }
	on, off := true, false
	tlsA := &v1alpha1.ServiceTLS{CertFile: "a.pem", KeyFile: "a.key"}
	tests := []struct {
		name          string
		first, second v1alpha1.ServiceSpec // from one.yaml and two.yaml
		groups        int                  // listeners, when accepted
		err           string               // part of the error, when refused
	}{
		{name: "two ports", first: v1alpha1.ServiceSpec{Listen: a}, second: v1alpha1.ServiceSpec{Listen: b}, groups: 2},
		{name: "two ports with different settings", first: v1alpha1.ServiceSpec{Listen: a, TLS: tlsA},
			second: v1alpha1.ServiceSpec{Listen: b, VersionHeader: &off, TrustedProxies: []string{"10.0.0.0/8"}}, groups: 2},
		{name: "same port, same host and prefix", first: v1alpha1.ServiceSpec{Listen: a, Host: "shop.example.com"},
			second: v1alpha1.ServiceSpec{Listen: a, Host: "shop.example.com"},
			err:    `two.yaml: rollout "second" listens on 127.0.0.1:8082 with host "shop.example.com" and path prefix "" like rollout "first" (one.yaml); give each its own host or pathPrefix`},
		{name: "same port, neither routed", first: v1alpha1.ServiceSpec{Listen: a}, second: v1alpha1.ServiceSpec{Listen: a},
			err: `like rollout "first" (one.yaml)`},
		{name: "same port, other prefix", first: v1alpha1.ServiceSpec{Listen: a}, second: v1alpha1.ServiceSpec{Listen: a, PathPrefix: "/api"}, groups: 1},
		{name: "same port, other host", first: v1alpha1.ServiceSpec{Listen: a, Host: "a.example.com"}, second: v1alpha1.ServiceSpec{Listen: a, Host: "b.example.com"}, groups: 1},
		{name: "port 0 is never shared", first: v1alpha1.ServiceSpec{Listen: "127.0.0.1:0"},
			second: v1alpha1.ServiceSpec{Listen: "127.0.0.1:0", VersionHeader: &off}, groups: 2},
		{name: "tls disagrees", first: v1alpha1.ServiceSpec{Listen: a, TLS: tlsA}, second: v1alpha1.ServiceSpec{Listen: a, PathPrefix: "/api"},
			err: `two.yaml: rollout "second" shares 127.0.0.1:8082 with rollout "first" (one.yaml) but not its tls;`},
		{name: "tls agrees", first: v1alpha1.ServiceSpec{Listen: a, TLS: tlsA},
			second: v1alpha1.ServiceSpec{Listen: a, PathPrefix: "/api", TLS: &v1alpha1.ServiceTLS{CertFile: "a.pem", KeyFile: "a.key"}}, groups: 1},
		{name: "versionHeader disagrees", first: v1alpha1.ServiceSpec{Listen: a}, second: v1alpha1.ServiceSpec{Listen: a, PathPrefix: "/api", VersionHeader: &off},
			err: "but not its versionHeader;"},
		{name: "versionHeader true is the default", first: v1alpha1.ServiceSpec{Listen: a}, second: v1alpha1.ServiceSpec{Listen: a, PathPrefix: "/api", VersionHeader: &on}, groups: 1},
		{name: "trustedProxies disagree", first: v1alpha1.ServiceSpec{Listen: a, TrustedProxies: []string{"10.0.0.0/8"}},
			second: v1alpha1.ServiceSpec{Listen: a, PathPrefix: "/api", TrustedProxies: []string{"10.0.0.0/16"}}, err: "but not its trustedProxies;"},
		{name: "trustedProxies agree once normalised", first: v1alpha1.ServiceSpec{Listen: a, TrustedProxies: []string{"10.0.0.0/8", "192.0.2.1", "fd00::/8"}},
			second: v1alpha1.ServiceSpec{Listen: a, PathPrefix: "/api", TrustedProxies: []string{"fd00::1/8", "::ffff:192.0.2.1", "10.1.2.3/8", "10.0.0.0/8"}}, groups: 1},
		{name: "limits disagree", first: v1alpha1.ServiceSpec{Listen: a, Limits: &v1alpha1.ListenerLimits{MaxConnections: n(100)}},
			second: v1alpha1.ServiceSpec{Listen: a, PathPrefix: "/api"}, err: "but not its limits;"},
		{name: "limits agree with the defaults written out", first: v1alpha1.ServiceSpec{Listen: a},
			second: v1alpha1.ServiceSpec{Listen: a, PathPrefix: "/api", Limits: &v1alpha1.ListenerLimits{
				MaxConnections: n(proxy.DefaultMaxConnections), MaxConnectionsPerClient: n(proxy.DefaultMaxConnectionsPerClient)}}, groups: 1},
		{name: "every disagreement named", first: v1alpha1.ServiceSpec{Listen: a, TLS: tlsA, Limits: &v1alpha1.ListenerLimits{MaxConnectionsPerClient: n(8)}},
			second: v1alpha1.ServiceSpec{Listen: a, PathPrefix: "/api", VersionHeader: &off, TrustedProxies: []string{"::1"}},
			err:    "but not its tls, versionHeader, trustedProxies, limits;"},
		{name: "unparsable trusted proxy", first: v1alpha1.ServiceSpec{Listen: a}, second: v1alpha1.ServiceSpec{Listen: b, TrustedProxies: []string{"10.0.0.0/33"}},
			err: `two.yaml: rollout "second": spec.service.trustedProxies[0]: "10.0.0.0/33" is not an IP address or CIDR prefix`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.first.Stable.URL, tt.second.Stable.URL = "http://127.0.0.1:9001", "http://127.0.0.1:9002"
			fronts, err := groupFrontends([]*v1alpha1.Rollout{svcRollout("first", tt.first), svcRollout("second", tt.second)},
				[]string{"one.yaml", "two.yaml"})
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err %v, want …%s…", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(fronts) != tt.groups {
				t.Fatalf("%d listeners, want %d", len(fronts), tt.groups)
			}
			if tt.groups == 1 && (fronts[0].single || !slices.Equal(fronts[0].names, []string{"first", "second"})) {
				t.Errorf("shared listener: single %v, rollouts %v", fronts[0].single, fronts[0].names)
			}
			if tt.groups == 2 && (!fronts[0].single || !fronts[1].single) {
				t.Errorf("two listeners, each of one unrouted rollout, should need no mux")
			}
		})
	}
}

func TestListenerSettingsReachTheServerConfig(t *testing.T) {
	conns, perClient := int32(50), int32(3)
	off := false
	svc := v1alpha1.ServiceSpec{Listen: "127.0.0.1:0", VersionHeader: &off,
		TrustedProxies: []string{"fd00::/8", "10.0.0.1", "10.0.0.1/32"},
		Limits:         &v1alpha1.ListenerLimits{MaxConnections: &conns, MaxConnectionsPerClient: &perClient}}
	l, err := listenerOf(&svc)
	if err != nil {
		t.Fatal(err)
	}
	cfg := l.serverConfig(nil)
	want := []netip.Prefix{netip.MustParsePrefix("10.0.0.1/32"), netip.MustParsePrefix("fd00::/8")}
	if cfg.MaxConnections != 50 || cfg.MaxConnectionsPerClient != 3 || !slices.Equal(cfg.TrustedProxies, want) || l.versionHeader != "" {
		t.Errorf("got %+v, version header %q", cfg, l.versionHeader)
	}
	if l, _ := listenerOf(&v1alpha1.ServiceSpec{Listen: ":0"}); l.versionHeader != proxy.DefaultVersionHeader ||
		l.maxConnections != proxy.DefaultMaxConnections || l.maxConnectionsPerClient != proxy.DefaultMaxConnectionsPerClient || l.trustedProxies != nil {
		t.Errorf("defaults: %+v", l)
	}
}

// TestVersionHeaderOffAnnouncesNothing runs two rollouts on two ports of
// one daemon, one with versionHeader: false, and asks both over HTTP/1.1
// (the fast path) and h2c (net/http): only the other one names its
// version in a header, and both still answer from their stable.
func TestVersionHeaderOffAnnouncesNothing(t *testing.T) {
	quiet := app(t, sampleapp.Config{Version: "quiet-v1"})
	loud := app(t, sampleapp.Config{Version: "loud-v1"})
	quietAddr, loudAddr := freeAddr(t), freeAddr(t)
	doc := fmt.Sprintf(`apiVersion: pipit.dev/v1alpha1
kind: Rollout
metadata: {name: quiet}
spec:
  service:
    listen: %[1]s
    stable: {url: %[2]q, version: quiet-v1}
    versionHeader: false
    trustedProxies: [127.0.0.1/32]
    limits: {maxConnections: 100, maxConnectionsPerClient: 10}
  strategy: {steps: [{setWeight: 10}]}
---
apiVersion: pipit.dev/v1alpha1
kind: Rollout
metadata: {name: loud}
spec:
  service: {listen: %[3]s, stable: {url: %[4]q, version: loud-v1}}
  strategy: {steps: [{setWeight: 10}]}
`, quietAddr, quiet.URL, loudAddr, loud.URL)
	startDaemon(t, t.TempDir(), []byte(doc))

	var h2c http.Protocols
	h2c.SetUnencryptedHTTP2(true)
	// proto is what the client speaks, as the response names it.
	clients := map[string]*http.Client{
		"HTTP/1.1": {Transport: &http.Transport{}, Timeout: 5 * time.Second},
		"HTTP/2.0": {Transport: &http.Transport{Protocols: &h2c}, Timeout: 5 * time.Second},
	}
	for proto, c := range clients {
		for _, tt := range []struct{ addr, version, header string }{
			{quietAddr, "quiet-v1", ""},
			{loudAddr, "loud-v1", "loud-v1"},
		} {
			resp, err := c.Get("http://" + tt.addr + "/")
			if err != nil {
				t.Fatalf("%s %s: %v", proto, tt.addr, err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.Proto != proto {
				t.Errorf("asked over %s, answered over %s", proto, resp.Proto)
			}
			if !strings.Contains(string(body), tt.version) {
				t.Errorf("%s %s: answered %q, want %s", proto, tt.addr, body, tt.version)
			}
			if got, ok := resp.Header[proxy.DefaultVersionHeader]; strings.Join(got, ",") != tt.header || ok != (tt.header != "") {
				t.Errorf("%s %s: %s %q, want %q", proto, tt.addr, proxy.DefaultVersionHeader, got, tt.header)
			}
		}
	}
}
