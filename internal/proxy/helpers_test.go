package proxy

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/testenv/nettest"
	"github.com/pipit-dev/pipit/internal/traffic"
)

// testUpstream is a test backend on 127.0.0.1 that answers its own name and
// counts the requests it served.
type testUpstream struct {
	*httptest.Server
	name string
	hits atomic.Int64
}

func newUpstream(t *testing.T, name string) *testUpstream {
	t.Helper()
	u := &testUpstream{name: name}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		u.hits.Add(1)
		_, _ = io.WriteString(w, name)
	}))
	t.Cleanup(u.Close)
	return u
}

func (u *testUpstream) upstream(t *testing.T) Upstream {
	return Upstream{Version: u.name, URL: nettest.MustURL(t, u.URL)}
}

// testLogger writes to the test's output, shown when it fails or with -v.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func newProxy(t testing.TB, cfg Config) *Proxy {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	if cfg.VersionHeader == "" {
		cfg.VersionHeader = DefaultVersionHeader
	}
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// front serves p on 127.0.0.1 and returns its URL.
func front(t testing.TB, p *Proxy) string {
	t.Helper()
	s := httptest.NewServer(p)
	t.Cleanup(s.Close)
	return s.URL
}

// get requests url and returns the status, the version header and the body.
func get(t testing.TB, client *http.Client, url string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header.Get(DefaultVersionHeader), string(body)
}

func setWeight(t testing.TB, p *Proxy, w v1alpha1.Percent) {
	t.Helper()
	if err := p.SetWeight(w); err != nil {
		t.Fatal(err)
	}
}

// settled waits until p has counted n requests and returns its stats. The
// proxy counts a request when its handler returns, which can be just
// after the client has read the response.
func settled(t *testing.T, p *Proxy, n uint64) traffic.Stats {
	t.Helper()
	var s traffic.Stats
	nettest.Eventually(t, fmt.Sprintf("the proxy to count %d requests", n), func() bool {
		s = p.Stats()
		return s.Stable.Requests+s.Canary.Requests >= n
	})
	return s
}
