package proxy

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/proxy/health"
	"github.com/pipit-dev/pipit/internal/testenv/nettest"
)

func setEndpoints(t *testing.T, p *Proxy, role, version string, ups ...*testUpstream) {
	t.Helper()
	var urls []*url.URL
	for _, u := range ups {
		urls = append(urls, nettest.MustURL(t, u.URL))
	}
	if err := p.SetEndpoints(role, version, urls); err != nil {
		t.Fatal(err)
	}
}

// served sends n requests and counts the answers by body; any answer but
// 200 fails the test.
func served(t *testing.T, url string, n int) map[string]int {
	t.Helper()
	client := &http.Client{}
	seen := map[string]int{}
	for range n {
		code, _, body := get(t, client, url+"/x")
		if code != http.StatusOK {
			t.Fatalf("got %d %q", code, body)
		}
		seen[body]++
	}
	return seen
}

func TestEndpointsBalanceReplicasAndCountPerVersion(t *testing.T) {
	for _, fe := range frontends {
		t.Run(fe.name, func(t *testing.T) {
			p := newProxy(t, Config{Stable: Upstream{Version: "v1"}})
			url := fe.serve(t, p)

			// No ready replica of the stable yet: the proxy answers 503
			// itself and counts the failure against the version.
			code, version, body := get(t, &http.Client{}, url+"/x")
			if code != http.StatusServiceUnavailable || version != "v1" || !strings.Contains(body, "no ready replica") {
				t.Fatalf("before any replica: %d %q %q", code, version, body)
			}
			if s := settled(t, p, 1); s.Stable.TransportErrors != 1 || s.Stable.Version != "v1" {
				t.Fatalf("stats before any replica: %+v", s.Stable)
			}

			a, b := newUpstream(t, "v1-a"), newUpstream(t, "v1-b")
			setEndpoints(t, p, RoleStable, "v1", a, b)
			seen := served(t, url, 100)
			if seen["v1-a"] != 50 || seen["v1-b"] != 50 {
				t.Errorf("two replicas served %v, want round robin", seen)
			}
			// A replica leaves: the version keeps its counters.
			setEndpoints(t, p, RoleStable, "v1", b)
			if seen := served(t, url, 10); seen["v1-b"] != 10 {
				t.Errorf("one replica left, served %v", seen)
			}
			if s := settled(t, p, 111); s.Stable.Requests != 111 {
				t.Errorf("v1 counted %d requests, want 111 over its replicas", s.Stable.Requests)
			}
		})
	}
}

func TestEndpointsUnreadyCanaryGetsNothing(t *testing.T) {
	for _, fe := range frontends {
		t.Run(fe.name, func(t *testing.T) {
			st := newUpstream(t, "v1")
			p := newProxy(t, Config{Stable: Upstream{Version: "v1"}, Traffic: &v1alpha1.TrafficSpec{
				Rules: []v1alpha1.TrafficRule{{Name: "beta", To: v1alpha1.DestinationCanary, Headers: map[string]v1alpha1.StringMatch{"X-Beta": {Exact: "1"}}}},
			}})
			setEndpoints(t, p, RoleStable, "v1", st)
			setWeight(t, p, v1alpha1.FullWeight)
			url := fe.serve(t, p)

			// The canary is there, with no ready replica: its share and
			// the users its rule names go to stable, never to a 503.
			setEndpoints(t, p, RoleCanary, "v2")
			if seen := served(t, url, 20); seen["v1"] != 20 {
				t.Fatalf("canary not ready: served %v", seen)
			}
			req, _ := http.NewRequest(http.MethodGet, url+"/x", nil)
			req.Header.Set("X-Beta", "1")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || resp.Header.Get(DefaultVersionHeader) != "v1" {
				t.Errorf("rule for the unready canary: %d from %q", resp.StatusCode, resp.Header.Get(DefaultVersionHeader))
			}

			ca := newUpstream(t, "v2")
			setEndpoints(t, p, RoleCanary, "v2", ca)
			if seen := served(t, url, 20); seen["v2"] != 20 {
				t.Errorf("canary ready at 100%%: served %v", seen)
			}
			// Not ready again, then ready: the same counters go on.
			setEndpoints(t, p, RoleCanary, "v2")
			setEndpoints(t, p, RoleCanary, "v2", ca)
			served(t, url, 5)
			if s := settled(t, p, 46); s.Canary.Version != "v2" || s.Canary.Requests != 25 {
				t.Errorf("canary stats %+v, want 25 requests of v2", s.Canary)
			}

			// An empty version takes the canary away.
			setEndpoints(t, p, RoleCanary, "")
			if _, c := p.RoutedVersions(); c != "" {
				t.Errorf("canary %q after removal", c)
			}
			if seen := served(t, url, 10); seen["v1"] != 10 {
				t.Errorf("canary removed: served %v", seen)
			}
		})
	}
}

func TestEndpointsKeepACanaryShutOff(t *testing.T) {
	st, ca := newUpstream(t, "v1"), newUpstream(t, "v2")
	p := newProxy(t, Config{Stable: Upstream{Version: "v1"}})
	setEndpoints(t, p, RoleStable, "v1", st)
	setEndpoints(t, p, RoleCanary, "v2", ca)
	setWeight(t, p, v1alpha1.FullWeight)
	p.SetCanaryAllowed(false)
	// A replica restart of the shut-off canary must not let it back in.
	setEndpoints(t, p, RoleCanary, "v2")
	setEndpoints(t, p, RoleCanary, "v2", ca)
	if seen := served(t, front(t, p), 10); seen["v1"] != 10 {
		t.Errorf("shut-off canary came back: served %v", seen)
	}
}

func TestEndpointsRefuseBadInput(t *testing.T) {
	p := newProxy(t, Config{Stable: Upstream{Version: "v1"}})
	for _, tc := range []struct {
		role, version string
		urls          []*url.URL
	}{
		{"mirror", "v1", nil},
		{RoleStable, "", nil},
		{RoleCanary, "v2", []*url.URL{nettest.MustURL(t, "ftp://127.0.0.1:21")}},
		{RoleCanary, "v2", []*url.URL{nil}},
	} {
		if err := p.SetEndpoints(tc.role, tc.version, tc.urls); err == nil {
			t.Errorf("SetEndpoints(%q, %q, %v) accepted", tc.role, tc.version, tc.urls)
		}
	}
}

// A health checker on a proxy whose stable has no replica probes nothing
// instead of failing.
func TestHealthCheckerSkipsAVersionWithoutReplica(t *testing.T) {
	p := newProxy(t, Config{Stable: Upstream{Version: "v1"}})
	h, err := NewHealthChecker(p, health.Config{Interval: 10 * time.Millisecond, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := h.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if _, _, known := h.Health(RoleStable); known {
		t.Error("the stable's health is known without a replica to probe")
	}
}
