package metric

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"text/template"
	"time"

	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/testenv/promserver"
)

// errorRateQuery is the error rate of one version, as a user would write
// it: every field it uses comes from the template.
const errorRateQuery = `sum(rate({{ .Vars.metric }}{version="{{ .Version }}",code=~"5.."}[{{ .Interval }}]))
/ sum(rate({{ .Vars.metric }}{version="{{ .Version }}"}[{{ .Interval }}]))`

// fakeApp exposes request counters per version and code the way an
// instrumented service does. It serves /metrics under the same lock as
// traffic is added, so every scrape sees whole batches and the error
// share of every sample is exact.
type fakeApp struct {
	mu       sync.Mutex
	requests *prometheus.CounterVec
	metrics  http.Handler
}

func newFakeApp() *fakeApp {
	reg := prometheus.NewRegistry()
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "http_requests_total",
		Help: "Requests served, by version and status code.",
	}, []string{"version", "code"})
	reg.MustRegister(requests)
	return &fakeApp{requests: requests, metrics: promhttp.HandlerFor(reg, promhttp.HandlerOpts{})}
}

func (a *fakeApp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.metrics.ServeHTTP(w, r)
}

// serve adds one batch of requests: per version, ok successes and errs
// 500s.
func (a *fakeApp) serve(batch map[string][2]int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for version, n := range batch {
		a.requests.WithLabelValues(version, "200").Add(float64(n[0]))
		a.requests.WithLabelValues(version, "500").Add(float64(n[1]))
	}
}

// run adds a batch every tick until ctx ends.
func (a *fakeApp) run(ctx context.Context, batch map[string][2]int) {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			a.serve(batch)
		}
	}
}

// front is an HTTP front of the real Prometheus that can check requests
// or fail some of them before passing them on, as a gateway would.
type front struct {
	calls   atomic.Int32
	handler func(n int32, w http.ResponseWriter, r *http.Request) bool
	proxy   *httputil.ReverseProxy
}

func (f *front) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := f.calls.Add(1)
	if f.handler != nil && !f.handler(n, w, r) {
		return
	}
	f.proxy.ServeHTTP(w, r)
}

func newFront(t *testing.T, promURL string, handler func(n int32, w http.ResponseWriter, r *http.Request) bool) (*front, string) {
	t.Helper()
	u, err := url.Parse(promURL)
	if err != nil {
		t.Fatal(err)
	}
	f := &front{handler: handler, proxy: httputil.NewSingleHostReverseProxy(u)}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv.URL
}

func newProm(t *testing.T, spec v1alpha1.PrometheusProvider) *Prometheus {
	t.Helper()
	p, err := NewPrometheus(spec, Env{})
	if err != nil {
		t.Fatalf("NewPrometheus: %v", err)
	}
	return p
}

func approx(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b)) }

func TestPrometheusProvider(t *testing.T) {
	app := newFakeApp()
	target := httptest.NewServer(app)
	defer target.Close()
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		// v1 fails 1 request in 20 (5%), v2 1 in 5 (20%).
		app.run(ctx, map[string][2]int{"v1": {19, 1}, "v2": {4, 1}})
	}()
	defer func() { stop(); wg.Wait() }()

	prom := promserver.Start(t, []string{target.URL + "/metrics"}, 200*time.Millisecond)
	vars := map[string]string{"metric": "http_requests_total"}
	q := func(version string) Query {
		return Query{Rollout: "shop", Namespace: "default", Version: version, Role: "canary", Interval: 5 * time.Second, Vars: vars}
	}
	rendered, err := render(mustTemplate(t, errorRateQuery), q("v1"))
	if err != nil {
		t.Fatal(err)
	}
	waitCtx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := prom.WaitForSamples(waitCtx, rendered); err != nil {
		t.Fatal(err)
	}

	t.Run("error rate per version", func(t *testing.T) { testErrorRatePerVersion(t, prom.URL, q) })
	t.Run("scalar result", func(t *testing.T) { testScalarResult(t, prom.URL, q) })
	t.Run("empty result is no data", func(t *testing.T) { testEmptyResultIsNoData(t, prom.URL, q) })
	t.Run("several series is an error", func(t *testing.T) { testSeveralSeriesIsAnError(t, prom.URL, q) })
	t.Run("NaN is no data, Inf an error", func(t *testing.T) { testNaNIsNoDataInfAnError(t, prom.URL, q) })
	t.Run("range vector is an error", func(t *testing.T) { testRangeVectorIsAnError(t, prom.URL, q) })
	t.Run("samples of the window", func(t *testing.T) { testSamplesOfTheWindow(t, prom.URL, q) })
	t.Run("5xx answers are retried", func(t *testing.T) { test5xxAnswersAreRetried(t, prom.URL, q) })
	t.Run("bad queries are not retried", func(t *testing.T) { testBadQueriesAreNotRetried(t, prom.URL, q) })
	t.Run("timeout", func(t *testing.T) { testTimeout(t, prom.URL, q) })
	t.Run("auth and headers reach Prometheus", func(t *testing.T) { testAuthAndHeadersReachPrometheus(t, prom.URL, q) })
}

// The subtests of TestPrometheusProvider. Each queries promURL, a Prometheus
// scraping an app whose version v1 fails 5% of requests and v2 20%; q makes
// the query of a version.

func testErrorRatePerVersion(t *testing.T, promURL string, q func(version string) Query) {
	p := newProm(t, v1alpha1.PrometheusProvider{Address: promURL, Query: errorRateQuery})
	for version, want := range map[string]float64{"v1": 0.05, "v2": 0.2} {
		got, err := p.Measure(context.Background(), q(version))
		if err != nil {
			t.Fatalf("%s: %v", version, err)
		}
		if !approx(got, want) {
			t.Errorf("%s: error rate %v, want %v", version, got, want)
		}
	}
}

func testScalarResult(t *testing.T, promURL string, q func(version string) Query) {
	p := newProm(t, v1alpha1.PrometheusProvider{Address: promURL, Query: `scalar(count(count by (version) ({{ .Vars.metric }})))`})
	got, err := p.Measure(context.Background(), q("v1"))
	if err != nil || got != 2 {
		t.Fatalf("got %v, %v; want 2 versions", got, err)
	}
}

func testEmptyResultIsNoData(t *testing.T, promURL string, q func(version string) Query) {
	p := newProm(t, v1alpha1.PrometheusProvider{Address: promURL, Query: errorRateQuery})
	_, err := p.Measure(context.Background(), q("v9"))
	if !errors.Is(err, ErrNoData) {
		t.Fatalf("got %v, want ErrNoData", err)
	}
}

func testSeveralSeriesIsAnError(t *testing.T, promURL string, q func(version string) Query) {
	p := newProm(t, v1alpha1.PrometheusProvider{Address: promURL, Query: `{{ .Vars.metric }}{version="{{ .Version }}"}`})
	_, err := p.Measure(context.Background(), q("v1"))
	if err == nil || errors.Is(err, ErrNoData) || !strings.Contains(err.Error(), "2 series") {
		t.Fatalf("got %v, want an error naming 2 series", err)
	}
}

func testNaNIsNoDataInfAnError(t *testing.T, promURL string, q func(version string) Query) {
	nan := newProm(t, v1alpha1.PrometheusProvider{Address: promURL, Query: `0 / 0`})
	if _, err := nan.Measure(context.Background(), q("v1")); !errors.Is(err, ErrNoData) {
		t.Errorf("0/0: got %v, want ErrNoData", err)
	}
	inf := newProm(t, v1alpha1.PrometheusProvider{Address: promURL, Query: `1 / 0`})
	if _, err := inf.Measure(context.Background(), q("v1")); err == nil || errors.Is(err, ErrNoData) {
		t.Errorf("1/0: got %v, want an error", err)
	}
}

func testRangeVectorIsAnError(t *testing.T, promURL string, q func(version string) Query) {
	p := newProm(t, v1alpha1.PrometheusProvider{Address: promURL, Query: `sum(http_requests_total)[{{ .Interval }}:1s]`})
	if _, err := p.Measure(context.Background(), q("v1")); err == nil || !strings.Contains(err.Error(), "range vector") {
		t.Fatalf("got %v, want a range vector error", err)
	}
}

func testSamplesOfTheWindow(t *testing.T, promURL string, q func(version string) Query) {
	p := newProm(t, v1alpha1.PrometheusProvider{Address: promURL, Query: errorRateQuery})
	got, err := p.Samples(context.Background(), q("v2"))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) == 0 {
		t.Fatal("no samples")
	}
	for i, x := range got {
		if !approx(x, 0.2) {
			t.Errorf("sample %d = %v, want 0.2", i, x)
		}
	}
	if _, err := p.Samples(context.Background(), q("v9")); !errors.Is(err, ErrNoData) {
		t.Errorf("v9: got %v, want ErrNoData", err)
	}
	multi := newProm(t, v1alpha1.PrometheusProvider{Address: promURL, Query: `{{ .Vars.metric }}`})
	if _, err := multi.Samples(context.Background(), q("v1")); err == nil || !strings.Contains(err.Error(), "4 series") {
		t.Errorf("several series: got %v, want an error naming 4 series", err)
	}
}

func test5xxAnswersAreRetried(t *testing.T, promURL string, q func(version string) Query) {
	f, addr := newFront(t, promURL, func(n int32, w http.ResponseWriter, _ *http.Request) bool {
		if n <= 2 {
			http.Error(w, "overloaded", http.StatusServiceUnavailable)
			return false
		}
		return true
	})
	p := newProm(t, v1alpha1.PrometheusProvider{Address: addr, Query: errorRateQuery})
	got, err := p.Measure(context.Background(), q("v1"))
	if err != nil || !approx(got, 0.05) {
		t.Fatalf("got %v, %v; want 0.05 after retries", got, err)
	}
	if n := f.calls.Load(); n != 3 {
		t.Errorf("%d requests, want 3", n)
	}
}

func testBadQueriesAreNotRetried(t *testing.T, promURL string, q func(version string) Query) {
	f, addr := newFront(t, promURL, nil)
	p := newProm(t, v1alpha1.PrometheusProvider{Address: addr, Query: `sum(rate(`})
	_, err := p.Measure(context.Background(), q("v1"))
	if err == nil || errors.Is(err, ErrNoData) {
		t.Fatalf("got %v, want a parse error", err)
	}
	if n := f.calls.Load(); n != 1 {
		t.Errorf("%d requests, want 1", n)
	}
}

func testTimeout(t *testing.T, promURL string, q func(version string) Query) {
	_, addr := newFront(t, promURL, func(_ int32, _ http.ResponseWriter, r *http.Request) bool {
		// The server notices the client hanging up only once the
		// body is read.
		_, _ = io.Copy(io.Discard, r.Body)
		<-r.Context().Done()
		return false
	})
	p := newProm(t, v1alpha1.PrometheusProvider{Address: addr, Query: errorRateQuery, Timeout: &metav1.Duration{Duration: 300 * time.Millisecond}})
	_, err := p.Measure(context.Background(), q("v1"))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want a deadline error", err)
	}
}

func testAuthAndHeadersReachPrometheus(t *testing.T, promURL string, q func(version string) Query) {
	t.Setenv("PIPIT_TEST_PROM_TOKEN", "s3cret-token")
	var seen atomic.Bool
	_, addr := newFront(t, promURL, func(_ int32, w http.ResponseWriter, r *http.Request) bool {
		if r.Header.Get("Authorization") != "Bearer s3cret-token" || r.Header.Get("X-Scope-OrgID") != "team-a" {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return false
		}
		seen.Store(true)
		return true
	})
	p := newProm(t, v1alpha1.PrometheusProvider{
		Address: addr, Query: errorRateQuery,
		Auth:    &v1alpha1.HTTPAuth{BearerTokenEnv: "PIPIT_TEST_PROM_TOKEN"},
		Headers: map[string]string{"X-Scope-OrgID": "team-a"},
	})
	got, err := p.Measure(context.Background(), q("v2"))
	if err != nil || !approx(got, 0.2) || !seen.Load() {
		t.Fatalf("got %v, %v (authorised: %v); want 0.2", got, err, seen.Load())
	}
}

func mustTemplate(t *testing.T, text string) *template.Template {
	t.Helper()
	tmpl, err := parseTemplate("query", text)
	if err != nil {
		t.Fatal(err)
	}
	return tmpl
}

func TestTransient(t *testing.T) {
	cases := []struct {
		name string
		err  error
		want bool
	}{
		{"5xx", &promv1.Error{Type: promv1.ErrServer, Msg: "server error: 503"}, true},
		{"transport", &url.Error{Op: "Post", URL: "http://127.0.0.1:1", Err: errors.New("connection refused")}, true},
		{"bad PromQL", &promv1.Error{Type: promv1.ErrBadData, Msg: "parse error"}, false},
		{"4xx", &promv1.Error{Type: promv1.ErrClient, Msg: "client error: 403"}, false},
		{"execution", &promv1.Error{Type: promv1.ErrExec, Msg: "too many samples"}, false},
		{"unreadable credentials", &url.Error{Op: "Post", URL: "http://127.0.0.1:1", Err: fmt.Errorf("%w: token", errCredentials)}, false},
	}
	for _, c := range cases {
		if got := transient(c.err); got != c.want {
			t.Errorf("%s: transient = %v, want %v", c.name, got, c.want)
		}
	}
}
