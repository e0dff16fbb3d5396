package proxy

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/proxy/route"
	"github.com/pipit-dev/pipit/internal/testenv/nettest"
	"github.com/pipit-dev/pipit/internal/traffic"
)

// withinBinomial reports whether got successes out of n draws at
// probability prob lie within 6 standard deviations of the mean, or 3
// draws for tiny means; a correct split fails this about once in 10^9
// runs.
func withinBinomial(got, n int, prob float64) bool {
	mean := float64(n) * prob
	tol := math.Max(6*math.Sqrt(mean*(1-prob)), 3)
	return math.Abs(float64(got)-mean) <= tol
}

// testTable is a table at weight, with no TrafficSpec, routing to stable
// and canary (nil for none), both ready.
func testTable(t testing.TB, weight v1alpha1.Percent, stable, canary *backend) *table {
	rt, err := route.NewTable(weight, nil, route.CookieKeys{})
	if err != nil {
		t.Fatal(err)
	}
	canaryVersion := ""
	if canary != nil {
		canaryVersion = "v2"
	}
	return &table{Table: rt.WithUpstreams("v1", canaryVersion, canary != nil), stable: stable, canary: canary}
}

func TestRouteSplitsByWeight(t *testing.T) {
	stable, canary := &backend{role: RoleStable}, &backend{role: RoleCanary}
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	for _, tc := range []struct {
		weight v1alpha1.Percent
		draws  int
	}{
		{0, 100_000},
		{1, 4_000_000}, // 0.001%, the finest step: about 40 of 4M
		{500, 400_000}, // 0.5%
		{5_000, 200_000},
		{33_333, 200_000},
		{50_000, 200_000},
		{99_999, 4_000_000},
		{100_000, 100_000},
	} {
		tab := testTable(t, tc.weight, stable, canary)
		got := 0
		for range tc.draws {
			if b, _ := tab.choose(req); b == canary {
				got++
			}
		}
		if !withinBinomial(got, tc.draws, tc.weight.Float()/100) {
			t.Errorf("weight %s: %d of %d draws to canary, want about %.0f", tc.weight, got, tc.draws, float64(tc.draws)*tc.weight.Float()/100)
		}
		if (tc.weight == 0 && got != 0) || (tc.weight == v1alpha1.FullWeight && got != tc.draws) {
			t.Errorf("weight %s: %d of %d draws to canary", tc.weight, got, tc.draws)
		}
	}
	tab := testTable(t, v1alpha1.FullWeight, stable, nil)
	if b, _ := tab.choose(req); b != stable {
		t.Error("no canary upstream: routed away from stable")
	}
}

func TestProxySplitsTrafficOverHTTP(t *testing.T) {
	st, ca := newUpstream(t, "v1"), newUpstream(t, "v2")
	c := ca.upstream(t)
	p := newProxy(t, Config{Stable: st.upstream(t), Canary: &c, Weight: 25_000})
	s := checkSplit(t, p, front(t, p), st, ca, 2000, 25)
	if s.Stable.Version != "v1" || s.Canary.Version != "v2" {
		t.Errorf("stats versions %q, %q", s.Stable.Version, s.Canary.Version)
	}
}

func TestProxyWeightExtremes(t *testing.T) {
	st, ca := newUpstream(t, "v1"), newUpstream(t, "v2")
	c := ca.upstream(t)
	p := newProxy(t, Config{Stable: st.upstream(t), Canary: &c})
	url := front(t, p)
	client := &http.Client{}
	for range 300 {
		get(t, client, url)
	}
	if ca.hits.Load() != 0 || st.hits.Load() != 300 {
		t.Fatalf("weight 0: canary %d, stable %d", ca.hits.Load(), st.hits.Load())
	}
	setWeight(t, p, v1alpha1.FullWeight)
	for range 300 {
		get(t, client, url)
	}
	if ca.hits.Load() != 300 || st.hits.Load() != 300 {
		t.Fatalf("weight 100%%: canary %d, stable still %d", ca.hits.Load(), st.hits.Load())
	}
	if p.Weight() != v1alpha1.FullWeight {
		t.Errorf("Weight() = %s", p.Weight())
	}
}

func TestProxySetUpstreamsSwapsAndRestartsCanaryCounters(t *testing.T) {
	st, v2, v3 := newUpstream(t, "v1"), newUpstream(t, "v2"), newUpstream(t, "v3")
	c := v2.upstream(t)
	p := newProxy(t, Config{Stable: st.upstream(t), Canary: &c, Weight: v1alpha1.FullWeight})
	url := front(t, p)
	client := &http.Client{}
	for range 10 {
		get(t, client, url)
	}
	before := settled(t, p, 10)

	c3 := v3.upstream(t)
	if err := p.setUpstreams(st.upstream(t), &c3); err != nil {
		t.Fatal(err)
	}
	for range 4 {
		if _, version, _ := get(t, client, url); version != "v3" {
			t.Fatalf("after the swap answered by %q", version)
		}
	}
	after := settled(t, p, 4) // stable 0, and the new canary's own 4
	window := after.Since(before)
	if window.Canary.Version != "v3" || window.Canary.Requests != 4 {
		t.Errorf("canary window after swap: version %q, %d requests; want v3, 4", window.Canary.Version, window.Canary.Requests)
	}
	if got := after.Canary.Requests; got != 4 {
		t.Errorf("new canary's cumulative count %d, want 4 (its own only)", got)
	}
	if window.Stable.Requests != 0 {
		t.Errorf("stable window %d requests, want 0", window.Stable.Requests)
	}

	// Same version at a new address: counters go on.
	c3.URL = nettest.MustURL(t, v3.URL+"/")
	if err := p.setUpstreams(st.upstream(t), &c3); err != nil {
		t.Fatal(err)
	}
	get(t, client, url)
	if got := settled(t, p, 5).Canary.Requests; got != 5 {
		t.Errorf("same version, new URL: count %d, want 5", got)
	}

	if err := p.setUpstreams(st.upstream(t), nil); err != nil {
		t.Fatal(err)
	}
	if _, version, _ := get(t, client, url); version != "v1" {
		t.Errorf("no canary, weight 100%%: answered by %q", version)
	}
	stable, canary := p.RoutedVersions()
	if stable != "v1" || canary != "" {
		t.Errorf("RoutedVersions() = %q, %q", stable, canary)
	}
}

func TestProxyAnswersUpstreamFailures(t *testing.T) {
	for _, tc := range upstreamFailures(t) {
		t.Run(tc.name, func(t *testing.T) {
			p := newProxy(t, Config{
				Stable:                Upstream{Version: "v1", URL: nettest.MustURL(t, tc.url)},
				ResponseHeaderTimeout: 100 * time.Millisecond,
			})
			code, version, _ := get(t, &http.Client{}, front(t, p))
			if code != tc.code || version != "v1" {
				t.Fatalf("got %d with version header %q, want %d and v1", code, version, tc.code)
			}
			s := settled(t, p, 1).Stable
			if s.Requests != 1 || s.Errors5xx != tc.errs5xx || s.TransportErrors != tc.errsTr {
				t.Errorf("stats %d requests, %d 5xx, %d transport errors", s.Requests, s.Errors5xx, s.TransportErrors)
			}
			if rate, ok := s.ErrorRate(); !ok || rate != 100 {
				t.Errorf("error rate %v %v, want 100", rate, ok)
			}
		})
	}
}

func TestProxySetsForwardedHeaders(t *testing.T) {
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s|%s|%s|%s", r.Header.Get("X-Forwarded-For"), r.Header.Get("X-Forwarded-Proto"),
			r.Header.Get("X-Forwarded-Host"), r.URL.RequestURI())
	}))
	defer echo.Close()
	p := newProxy(t, Config{Stable: Upstream{URL: nettest.MustURL(t, echo.URL+"/base")}})
	req, _ := http.NewRequest(http.MethodGet, front(t, p)+"/path?q=1", nil)
	req.Host = "shop.example"
	req.Header.Set("X-Forwarded-For", "10.9.9.9") // forged by the client, whom nothing trusts: replaced
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	want := "127.0.0.1|http|shop.example|/base/path?q=1"
	if string(body) != want {
		t.Errorf("upstream saw %q, want %q", body, want)
	}
	if got := resp.Header.Get(DefaultVersionHeader); got != echo.URL+"/base" {
		t.Errorf("version header %q, want the URL as default version", got)
	}
}

func TestProxyVersionHeaderOff(t *testing.T) {
	st := newUpstream(t, "v1")
	p, err := New(Config{Stable: st.upstream(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer p.CloseIdleConnections()
	if _, version, _ := get(t, &http.Client{}, front(t, p)); version != "" {
		t.Errorf("version header %q with VersionHeader empty", version)
	}
}

func TestProxyStreamsWithoutBuffering(t *testing.T) {
	sse, release := eventStream(t)
	defer release() // before the front closes, which waits for the proxy's handler
	p := newProxy(t, Config{Stable: Upstream{URL: nettest.MustURL(t, sse.URL)}})
	resp, err := http.Get(front(t, p))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	// The upstream holds the second event until released, so reading the
	// first proves the proxy flushed it instead of buffering.
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || line != "data: first\n" {
		t.Fatalf("first line %q, %v", line, err)
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	good := Upstream{URL: nettest.MustURL(t, "http://127.0.0.1:1")}
	for name, cfg := range map[string]Config{
		"no stable URL":      {},
		"not http":           {Stable: Upstream{URL: nettest.MustURL(t, "ftp://127.0.0.1/")}},
		"no host":            {Stable: Upstream{URL: nettest.MustURL(t, "http:///x")}},
		"canary without URL": {Stable: good, Canary: &Upstream{Version: "v2"}},
		"weight over 100%":   {Stable: good, Weight: v1alpha1.FullWeight + 1},
		"negative weight":    {Stable: good, Weight: -1},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("%s: New accepted it", name)
		}
	}
	p := newProxy(t, Config{Stable: good})
	if err := p.SetWeight(v1alpha1.FullWeight + 1); err == nil || p.Weight() != 0 {
		t.Errorf("SetWeight(100.001%%) = %v, weight now %s", err, p.Weight())
	}
}

func TestStatsSinceWindows(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		code, _ := strconv.Atoi(r.URL.Query().Get("code"))
		w.WriteHeader(code)
	}))
	defer up.Close()
	p := newProxy(t, Config{Stable: Upstream{Version: "v1", URL: nettest.MustURL(t, up.URL)}})
	url := front(t, p)
	client := &http.Client{}
	send := func(code, n int) {
		for range n {
			get(t, client, url+"?code="+strconv.Itoa(code))
		}
	}

	zero := p.Stats()
	if _, ok := zero.Stable.SuccessRate(); ok {
		t.Error("success rate with no requests reported ok")
	}
	if _, ok := zero.Canary.Quantile(0.5); ok {
		t.Error("quantile with no canary reported ok")
	}
	send(200, 8)
	send(500, 2)
	first := settled(t, p, 10)
	send(200, 5)
	second := settled(t, p, 15)

	w1, w2 := first.Since(zero).Stable, second.Since(first).Stable
	if w1.Requests != 10 || w1.Errors5xx != 2 {
		t.Errorf("first window %d requests, %d 5xx; want 10, 2", w1.Requests, w1.Errors5xx)
	}
	if rate, _ := w1.SuccessRate(); rate != 80 {
		t.Errorf("first window success rate %v, want 80", rate)
	}
	if w2.Requests != 5 || w2.Errors5xx != 0 {
		t.Errorf("second window %d requests, %d 5xx; want 5, 0", w2.Requests, w2.Errors5xx)
	}
	if rate, _ := w2.ErrorRate(); rate != 0 {
		t.Errorf("second window error rate %v, want 0", rate)
	}
	if _, ok := second.Since(second).Stable.Mean(); ok {
		t.Error("empty window's mean reported ok")
	}
	if m, ok := w2.Mean(); !ok || m <= 0 {
		t.Errorf("second window mean %v %v", m, ok)
	}
}

func TestProxyCountsUpstreamClasses(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var code int
		fmt.Sscan(strings.TrimPrefix(r.URL.Path, "/"), &code)
		w.WriteHeader(code)
	}))
	defer up.Close()
	p := newProxy(t, Config{Stable: Upstream{Version: "v1", URL: nettest.MustURL(t, up.URL)}})
	url := front(t, p)
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, code := range []int{200, 204, 302, 404, 500, 503} {
		get(t, client, fmt.Sprintf("%s/%d", url, code))
	}
	s := settled(t, p, 6).Stable
	want := [traffic.NumClasses]uint64{traffic.Class2xx: 2, traffic.Class3xx: 1, traffic.Class4xx: 1, traffic.Class5xx: 2}
	var got [traffic.NumClasses]uint64
	for class := range traffic.NumClasses {
		got[class] = s.Count(class)
	}
	if got != want || s.Requests != 6 || s.Errors5xx != 2 {
		t.Errorf("classes %v (requests %d, 5xx %d), want %v", got, s.Requests, s.Errors5xx, want)
	}
}

func TestProxyCountsBrokenOffResponse(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100")
		io.WriteString(w, "only ten b")
		http.NewResponseController(w).Flush()
		panic(http.ErrAbortHandler) // drops the connection mid-body
	}))
	defer up.Close()
	p := newProxy(t, Config{Stable: Upstream{Version: "v1", URL: nettest.MustURL(t, up.URL)}})
	resp, err := http.Get(front(t, p))
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.ReadAll(resp.Body)
	resp.Body.Close()
	if err == nil {
		t.Error("the client read a whole body from a broken-off response")
	}
	s := settled(t, p, 1).Stable
	if s.TransportErrors != 1 || s.Count(traffic.Class2xx) != 0 {
		t.Errorf("broken-off response counted as %+v, want one transport error", s)
	}
}

func TestProxyPassesProtocolSwitch(t *testing.T) {
	up := echoUpgrade(t)
	p := newProxy(t, Config{Stable: Upstream{Version: "v1", URL: nettest.MustURL(t, up.URL)}})
	conn, br := switchToEcho(t, front(t, p))
	io.WriteString(conn, "ping\n")
	if line, err := br.ReadString('\n'); line != "ping\n" {
		t.Fatalf("echo %q, %v", line, err)
	}
	conn.Close()
	if s := settled(t, p, 1).Stable; s.Count(traffic.Class1xx) != 1 {
		t.Errorf("protocol switch counted as %+v, want one 1xx", s)
	}
}
