package promserver

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

func TestStartScrapesTargets(t *testing.T) {
	reg := prometheus.NewRegistry()
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "promserver_test_value", Help: "A value the test sets."})
	g.Set(42)
	reg.MustRegister(g)
	mux := http.NewServeMux()
	mux.Handle("/custom/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	target := httptest.NewServer(mux)
	defer target.Close()

	s := Start(t, []string{target.URL + "/custom/metrics"}, 200*time.Millisecond)
	if !strings.HasPrefix(s.URL, "http://127.0.0.1:") {
		t.Fatalf("URL %q is not on loopback", s.URL)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.WaitForSamples(ctx, `promserver_test_value{job="target-0"} == 42`); err != nil {
		t.Fatal(err)
	}

	// A query that never has samples ends with the context.
	short, cancelShort := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancelShort()
	if err := s.WaitForSamples(short, `absent_metric_for_sure`); err == nil {
		t.Fatal("WaitForSamples returned nil for a query without samples")
	}
}

func TestConfig(t *testing.T) {
	got, err := config([]string{"127.0.0.1:9100", "https://127.0.0.1:8443/stats"}, 500*time.Millisecond, []string{"/etc/rules.yaml"})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"scrape_interval: 500ms", "evaluation_interval: 500ms", `rule_files:
  - "/etc/rules.yaml"`,
		`job_name: "target-0"`, `scheme: "http"`, `metrics_path: "/metrics"`, `targets: ["127.0.0.1:9100"]`,
		`job_name: "target-1"`, `scheme: "https"`, `metrics_path: "/stats"`, `targets: ["127.0.0.1:8443"]`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("config lacks %q:\n%s", want, got)
		}
	}
	if _, err := config(nil, 0, nil); err == nil {
		t.Error("a zero scrape interval was accepted")
	}
	if _, err := config([]string{"http://"}, time.Second, nil); err == nil {
		t.Error("a URL without host was accepted")
	}
}
