package proxy

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/pipit-dev/pipit/internal/proxy/health"
)

func TestCollectorScrape(t *testing.T) {
	st, ca := newUpstream(t, "v1"), newUpstream(t, "v2")
	c := ca.upstream(t)
	p := newProxy(t, Config{Stable: st.upstream(t), Canary: &c, Weight: 12_500})
	h, changes := runChecker(t, p, health.Config{Interval: time.Hour}, nil)
	for range 2 {
		nextChange(t, changes)
	}
	url, client := front(t, p), &http.Client{}
	for range 40 {
		get(t, client, url)
	}
	s := settled(t, p, 40)

	reg := prometheus.NewRegistry()
	reg.MustRegister(NewCollector(p, h))
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	text := string(body)

	for _, want := range []string{
		`pipit_proxy_canary_weight_percent 12.5`,
		`pipit_proxy_requests_total{code_class="2xx",role="stable",version="v1"} ` + itoa(s.Stable.Requests),
		`pipit_proxy_requests_total{code_class="2xx",role="canary",version="v2"} ` + itoa(s.Canary.Requests),
		`pipit_proxy_requests_total{code_class="error",role="canary",version="v2"} 0`,
		`pipit_proxy_request_duration_seconds_count{role="stable",version="v1"} ` + itoa(s.Stable.Requests),
		`pipit_proxy_request_duration_seconds_bucket{role="canary",version="v2",le="60"} ` + itoa(s.Canary.Requests),
		`pipit_proxy_request_duration_seconds_bucket{role="stable",version="v1",le="+Inf"} ` + itoa(s.Stable.Requests),
		`pipit_proxy_upstream_up{role="stable"} 1`,
		`pipit_proxy_upstream_up{role="canary"} 1`,
	} {
		if !strings.Contains(text, want+"\n") {
			t.Errorf("scrape lacks %q", want)
		}
	}
	if s.Stable.Requests+s.Canary.Requests != 40 {
		t.Errorf("stats count %d requests, sent 40", s.Stable.Requests+s.Canary.Requests)
	}
}

func TestCollectorWithoutCanaryOrChecker(t *testing.T) {
	st := newUpstream(t, "v1")
	p := newProxy(t, Config{Stable: st.upstream(t)})
	// Only stable's series (6 classes + 1 histogram) and the weight: no
	// canary series, no health without a checker.
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewCollector(p, nil))
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range families {
		n += len(f.GetMetric())
	}
	if n != 8 {
		t.Errorf("gathered %d metrics, want 8", n)
	}
}

func itoa(n uint64) string { return strconv.FormatUint(n, 10) }
