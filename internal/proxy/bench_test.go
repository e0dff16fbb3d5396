package proxy

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/testenv/nettest"
)

// BenchmarkProxyRoute measures the routing decision alone, at a weight
// that needs a random draw.
func BenchmarkProxyRoute(b *testing.B) {
	tab := testTable(b, 5_000, &backend{role: RoleStable}, &backend{role: RoleCanary})
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			tab.choose(req)
		}
	})
}

// BenchmarkProxyServe measures a whole request through the proxy to a
// loopback backend, over keep-alive connections on both sides.
func BenchmarkProxyServe(b *testing.B) {
	benchmarkServe(b, front)
}

// benchmarkServe measures a whole request through a Proxy, served by
// serve, to a loopback backend, over keep-alive connections on both
// sides, so that the benchmarks of the two frontends differ only in it.
func benchmarkServe(b *testing.B, serve func(testing.TB, *Proxy) string) {
	body := []byte("ok")
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(body) }))
	defer up.Close()
	canary := &Upstream{Version: "v2", URL: nettest.MustURL(b, up.URL)}
	p := newProxy(b, Config{Stable: Upstream{Version: "v1", URL: nettest.MustURL(b, up.URL)}, Canary: canary, Weight: 10 * v1alpha1.PercentScale})
	url := serve(b, p)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	defer client.CloseIdleConnections()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := client.Get(url)
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
}

// BenchmarkProxyGoals measures the routing of requests keyed by user,
// with the goals' counting off and on (one goal, which one request in
// eight reaches), over 4,096 users: the cost of counting visits.
func BenchmarkProxyGoals(b *testing.B) {
	reqs := make([]*http.Request, 4096)
	for i := range reqs {
		reqs[i] = httptest.NewRequest(http.MethodGet, "/", nil)
		if i%8 == 0 {
			reqs[i] = httptest.NewRequest(http.MethodPost, "/buy", nil)
		}
		reqs[i].Header.Set("X-User-ID", "user-"+strconv.Itoa(i))
	}
	for _, tc := range []struct {
		name  string
		goals []v1alpha1.Goal
	}{{"off", nil}, {"on", buyGoal}} {
		b.Run(tc.name, func(b *testing.B) {
			up := Upstream{Version: "v1", URL: nettest.MustURL(b, "http://127.0.0.1:1")}
			canary := Upstream{Version: "v2", URL: nettest.MustURL(b, "http://127.0.0.1:2")}
			p := newProxy(b, Config{Stable: up, Canary: &canary, Weight: 10 * v1alpha1.PercentScale,
				Traffic: byUser, Goals: tc.goals})
			tab := p.table.Load()
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for i := 0; pb.Next(); i++ {
					tab.choose(reqs[i%len(reqs)])
				}
			})
		})
	}
}
