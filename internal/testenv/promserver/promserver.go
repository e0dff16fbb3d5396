// Package promserver runs a real Prometheus (Debian's package) for tests:
// installed when missing, started on a free loopback port with a scrape
// configuration of the test's targets, and killed when the test ends.
package promserver

import (
	"context"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	"github.com/pipit-dev/pipit/internal/testenv/tools"
)

// Binary is where Debian's package installs Prometheus.
const Binary = "/usr/bin/prometheus"

const (
	readyTimeout  = 60 * time.Second
	pollEvery     = 100 * time.Millisecond
	startAttempts = 3
)

// Server is a running Prometheus.
type Server struct {
	// URL is its address, such as http://127.0.0.1:40123.
	URL string
	api promv1.API
}

// Start runs Prometheus scraping the targets (host:port, or URLs such as
// http://127.0.0.1:8080/metrics; the path defaults to /metrics) every
// scrapeInterval, and waits until it is ready. It installs Prometheus
// when missing and fails the test when it cannot.
func Start(t testing.TB, scrapeTargets []string, scrapeInterval time.Duration) *Server {
	t.Helper()
	return StartWithRules(t, scrapeTargets, scrapeInterval, nil)
}

// StartWithRules is Start with the rule files loaded (absolute paths),
// evaluated every scrapeInterval too, so that a test's alerts fire soon.
func StartWithRules(t testing.TB, scrapeTargets []string, scrapeInterval time.Duration, ruleFiles []string) *Server {
	t.Helper()
	tools.EnsureDebian(t, "prometheus", Binary)
	dir := t.TempDir()
	cfg, err := config(scrapeTargets, scrapeInterval, ruleFiles)
	if err != nil {
		t.Fatalf("promserver: %v", err)
	}
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatalf("promserver: %v", err)
	}
	for attempt := 1; ; attempt++ {
		s, logs, err := launch(t, dir, cfgPath, attempt)
		if err == nil {
			return s
		}
		// Another process may take the free port between our probe and
		// Prometheus' bind; try another one.
		if attempt < startAttempts && strings.Contains(logs, "address already in use") {
			continue
		}
		t.Fatalf("promserver: %v\nprometheus log:\n%s", err, logs)
	}
}

// config writes a scrape configuration with one job per target, and the
// rule files to evaluate.
func config(targets []string, interval time.Duration, ruleFiles []string) (string, error) {
	if interval <= 0 {
		return "", fmt.Errorf("scrape interval must be positive, got %s", interval)
	}
	d := model.Duration(interval).String()
	var b strings.Builder
	fmt.Fprintf(&b, "global:\n  scrape_interval: %s\n  scrape_timeout: %s\n  evaluation_interval: %s\n", d, d, d)
	if len(ruleFiles) > 0 {
		b.WriteString("rule_files:\n")
		for _, f := range ruleFiles {
			fmt.Fprintf(&b, "  - %s\n", strconv.Quote(f))
		}
	}
	b.WriteString("scrape_configs:\n")
	for i, target := range targets {
		scheme, host, path := "http", target, "/metrics"
		if strings.Contains(target, "://") {
			u, err := url.Parse(target)
			if err != nil || u.Host == "" {
				return "", fmt.Errorf("scrape target %q is not a URL or host:port", target)
			}
			scheme, host = u.Scheme, u.Host
			if u.Path != "" {
				path = u.Path
			}
		}
		fmt.Fprintf(&b, "  - job_name: %s\n    scheme: %s\n    metrics_path: %s\n    static_configs:\n      - targets: [%s]\n",
			strconv.Quote(fmt.Sprintf("target-%d", i)), strconv.Quote(scheme), strconv.Quote(path), strconv.Quote(host))
	}
	return b.String(), nil
}

// launch starts Prometheus on a free port and waits until it is ready. On
// failure it returns the process' log.
func launch(t testing.TB, dir, cfgPath string, attempt int) (*Server, string, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, "", err
	}
	logPath := filepath.Join(dir, fmt.Sprintf("prometheus-%d.log", attempt))
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, "", err
	}
	defer logFile.Close()
	cmd := exec.Command(Binary,
		"--config.file="+cfgPath,
		"--storage.tsdb.path="+filepath.Join(dir, fmt.Sprintf("data-%d", attempt)),
		"--web.listen-address="+addr,
		"--log.level=warn",
	)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = procAttr()
	if err := cmd.Start(); err != nil {
		return nil, "", fmt.Errorf("starting %s: %w", Binary, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() {
		_ = cmd.Process.Kill()
		<-exited
	}
	readLog := func() string { b, _ := os.ReadFile(logPath); return string(b) }

	base := "http://" + addr
	if err := waitReady(base, exited); err != nil {
		stop()
		return nil, readLog(), err
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("prometheus log:\n%s", readLog())
		}
	})
	client, err := api.NewClient(api.Config{Address: base})
	if err != nil {
		return nil, readLog(), err
	}
	return &Server{URL: base, api: promv1.NewAPI(client)}, "", nil
}

// freeAddr finds a loopback port nobody listens on now.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// waitReady polls /-/ready until it answers 200, the process exits or the
// deadline passes.
func waitReady(base string, exited <-chan error) error {
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(readyTimeout)
	for {
		resp, err := client.Get(base + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("prometheus at %s not ready after %s", base, readyTimeout)
		}
		select {
		case err := <-exited:
			return fmt.Errorf("prometheus exited before it was ready: %v", err)
		case <-time.After(pollEvery):
		}
	}
}

// WaitForSamples polls until the instant query returns at least one
// sample that is not NaN, or ctx ends.
func (s *Server) WaitForSamples(ctx context.Context, query string) error {
	var last error
	for {
		v, _, _, err := s.api.Query(ctx, query, time.Now())
		switch {
		case err != nil:
			last = err
		case hasSample(v):
			return nil
		default:
			last = fmt.Errorf("result %s has no sample", v)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for samples of %q: %w (last: %v)", query, ctx.Err(), last)
		case <-time.After(pollEvery):
		}
	}
}

func hasSample(v model.Value) bool {
	switch r := v.(type) {
	case *model.Scalar:
		return !math.IsNaN(float64(r.Value))
	case model.Vector:
		for _, s := range r {
			if !math.IsNaN(float64(s.Value)) {
				return true
			}
		}
	case model.Matrix:
		return len(r) > 0
	}
	return false
}
