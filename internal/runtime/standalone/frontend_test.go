package standalone

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"

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
