package metric

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/analysis"
	"github.com/pipit-dev/pipit/internal/spec"
	"github.com/pipit-dev/pipit/internal/testenv/promserver"
)

// meshExporter serves the series a mesh or an application exports, for
// the canary and the stable of one rollout, as Prometheus scrapes them.
type meshExporter struct {
	mu       sync.Mutex
	versions map[string]*exportedVersion // by role
}

// exportedVersion is one version's cumulative traffic: requests by
// status code and a latency histogram in milliseconds.
type exportedVersion struct {
	codes   map[int]uint64
	buckets []uint64 // per bound of exportBoundsMs, not cumulative; the last is +Inf
	sumMs   float64
}

// exportedRoles are the versions' roles, each with a workload and a
// Service web-ROLE; preview is a blue-green rollout's preview Service.
var exportedRoles = []string{"canary", "stable", "preview"}

// exportBoundsMs are Istio's default bucket bounds, in milliseconds.
var exportBoundsMs = []float64{0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000}

func newMeshExporter() *meshExporter {
	e := &meshExporter{versions: map[string]*exportedVersion{}}
	for _, role := range exportedRoles {
		e.versions[role] = &exportedVersion{codes: map[int]uint64{}, buckets: make([]uint64, len(exportBoundsMs)+1)}
	}
	return e
}

// serve counts n requests of role, failed of them 5xx, each taking ms.
func (e *meshExporter) serve(role string, n, failed uint64, ms float64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	v := e.versions[role]
	v.codes[200] += n - failed
	v.codes[503] += failed
	i := 0
	for i < len(exportBoundsMs) && ms > exportBoundsMs[i] {
		i++
	}
	v.buckets[i] += n
	v.sumMs += float64(n) * ms
}

// ServeHTTP writes Istio's series and the convention's for both roles.
func (e *meshExporter) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	e.mu.Lock()
	defer e.mu.Unlock()
	var b strings.Builder
	for _, role := range exportedRoles {
		v := e.versions[role]
		istio := fmt.Sprintf(`reporter="destination",destination_workload_namespace="shop",destination_workload="web-%s"`, role)
		conv := fmt.Sprintf(`namespace="shop",service="web-%s"`, role)
		for code, n := range v.codes {
			fmt.Fprintf(&b, "istio_requests_total{%s,response_code=\"%d\"} %d\n", istio, code, n)
			fmt.Fprintf(&b, "http_requests_total{%s,code=\"%d\"} %d\n", conv, code, n)
		}
		var cumulative uint64
		for i, n := range v.buckets {
			cumulative += n
			ms, s := "+Inf", "+Inf"
			if i < len(exportBoundsMs) {
				ms, s = fmt.Sprint(exportBoundsMs[i]), fmt.Sprint(exportBoundsMs[i]/1000)
			}
			fmt.Fprintf(&b, "istio_request_duration_milliseconds_bucket{%s,le=%q} %d\n", istio, ms, cumulative)
			fmt.Fprintf(&b, "http_request_duration_seconds_bucket{%s,le=%q} %d\n", conv, s, cumulative)
		}
		fmt.Fprintf(&b, "istio_request_duration_milliseconds_sum{%s} %g\n", istio, v.sumMs)
		fmt.Fprintf(&b, "http_request_duration_seconds_sum{%s} %g\n", conv, v.sumMs/1000)
	}
	_, _ = w.Write([]byte(b.String()))
}

// clusterTargets are the objects the exporter's series name.
func clusterTargets(canaryVersion string) (canary, stable ClusterTarget) {
	return ClusterTarget{Version: canaryVersion, Namespace: "shop", Service: "web-canary", Workload: "web-canary"},
		ClusterTarget{Version: "v1", Namespace: "shop", Service: "web-stable", Workload: "web-stable"}
}

// refreshUntil refreshes until the canary has served want requests since
// the start, that is until Prometheus scraped the last traffic.
func refreshUntil(t *testing.T, cs *ClusterStats, canaryVersion string, want uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	canary, stable := clusterTargets(canaryVersion)
	for {
		err := cs.Refresh(ctx, canary, stable)
		if got := cs.Stats().Canary.Requests; err == nil && got == want {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the canary's requests never reached %d (have %d, last error %v)", want, cs.Stats().Canary.Requests, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// startMeshPrometheus starts an exporter and a real Prometheus scraping it.
func startMeshPrometheus(t *testing.T) (*meshExporter, *promserver.Server) {
	t.Helper()
	exp := newMeshExporter()
	srv := httptest.NewServer(exp)
	t.Cleanup(srv.Close)
	return exp, promserver.Start(t, []string{srv.URL + "/metrics"}, 200*time.Millisecond)
}

func ptr(x float64) *float64 { return &x }

// TestClusterBuiltinMetrics measures a good and then a bad canary from
// each router's series in a real Prometheus: the values, the threshold's
// verdict and the sequential test's alarm.
func TestClusterBuiltinMetrics(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Prometheus")
	}
	exp, prom := startMeshPrometheus(t)
	for _, router := range []spec.RouterKind{spec.RouterIstio, spec.RouterGatewayAPI, spec.RouterReplicas} {
		t.Run(string(router), func(t *testing.T) {
			cs, err := NewClusterStats(prom.URL, ClusterQueriesFor(router), Env{})
			if err != nil {
				t.Fatal(err)
			}
			exp.mu.Lock()
			base := exp.versions["canary"].codes[200] + exp.versions["canary"].codes[503]
			exp.mu.Unlock()
			refreshUntil(t, cs, "v2", base)
			checkGoodThenBad(t, exp, cs, base)
		})
	}
}

// checkGoodThenBad feeds a good canary and then a bad one through the
// exporter and checks what Builtin and the sequential test make of it.
func checkGoodThenBad(t *testing.T, exp *meshExporter, cs *ClusterStats, base uint64) {
	t.Helper()
	b := NewBuiltin(cs, nil)
	plan := spec.AnalysisPlan{Sequential: spec.SequentialPlan{Enabled: true, Alpha: 0.01}}
	set, err := NewSet(SetConfig{Rollout: "web", Namespace: "shop", Plan: plan, Builtin: b})
	if err != nil {
		t.Fatal(err)
	}
	st := v1alpha1.RolloutStatus{Canary: &v1alpha1.VersionRef{Version: "v2"}, Stable: &v1alpha1.VersionRef{Version: "v1"}}
	set.Tick(st) // the sequential test's starting counts
	success := v1alpha1.MetricSpec{Name: RequestSuccessRate, ThresholdRange: &v1alpha1.ThresholdRange{Min: ptr(99)}}
	p99 := v1alpha1.MetricSpec{Name: LatencyP99, ThresholdRange: &v1alpha1.ThresholdRange{Max: ptr(500)}}
	compared := v1alpha1.MetricSpec{Name: ErrorRate, Compare: &v1alpha1.CompareSpec{}}
	metrics := []spec.PlanMetric{{MetricSpec: success}, {MetricSpec: p99}, {MetricSpec: v1alpha1.MetricSpec{Name: RequestCount}}, {MetricSpec: compared}}
	judged := map[int]v1alpha1.MetricSpec{0: success, 1: p99, 3: compared} // by index in metrics

	exp.serve("canary", 1000, 0, 20)
	exp.serve("stable", 9000, 9, 20)
	refreshUntil(t, cs, "v2", base+1000)
	got := b.Measure(metrics)
	wantValue(t, got[0].Canary, 100, 0)
	wantValue(t, got[0].Stable, 99.9, 0.001)
	wantValue(t, got[1].Canary, 24.75, 0.5) // histogram_quantile's interpolation in (10, 25]
	wantValue(t, got[2].Canary, 1000, 0)
	for i, m := range judged {
		if r := analysis.Evaluate(m, got[i], 0.95); r.Verdict != v1alpha1.VerdictSuccessful {
			t.Errorf("good canary: %s: %s (%s)", m.Name, r.Verdict, r.Message)
		}
	}
	if alarms := set.Tick(st); len(alarms) > 0 {
		t.Errorf("good canary: sequential alarm %+v", alarms)
	}

	exp.serve("canary", 1000, 100, 700)
	exp.serve("stable", 9000, 9, 20)
	refreshUntil(t, cs, "v2", base+2000)
	got = b.Measure(metrics)
	wantValue(t, got[0].Canary, 90, 0)
	wantValue(t, got[2].Canary, 1000, 0)
	// The comparison's samples are of every request since the canary
	// started: half of them good, so 5% failed against the stable's 0.1%.
	if len(got[3].CanarySamples) == 0 || len(got[3].StableSamples) == 0 {
		t.Errorf("bad canary: compared error-rate without samples: %+v", got[3])
	}
	for i, m := range judged {
		if r := analysis.Evaluate(m, got[i], 0.95); r.Verdict != v1alpha1.VerdictFailed {
			t.Errorf("bad canary: %s: %s (%s), want Failed", m.Name, r.Verdict, r.Message)
		}
	}
	if alarms := set.Tick(st); len(alarms) != 1 {
		t.Errorf("bad canary: sequential alarms %+v, want one", alarms)
	}
}

func wantValue(t *testing.T, got *float64, want, tolerance float64) {
	t.Helper()
	if got == nil {
		t.Errorf("got no value, want %g", want)
		return
	}
	if *got < want-tolerance || *got > want+tolerance {
		t.Errorf("got %g, want %g ± %g", *got, want, tolerance)
	}
}

// monotoneCases are raw sums of counters read one after the other, and
// what the carried-over count is after each.
var monotoneCases = []struct {
	name      string
	raw, want []float64
}{
	{"growing", []float64{0, 5, 9}, []float64{0, 5, 9}},
	// A pod with 50 of the 150 left the sum: the count stays, then grows.
	{"pod left", []float64{100, 150, 105, 110}, []float64{100, 150, 150, 155}},
	// A pod restarted at zero: its requests before the scrape are lost.
	{"restart", []float64{100, 3, 10}, []float64{100, 100, 107}},
}

func TestMonotoneCarriesDropsOver(t *testing.T) {
	for _, c := range monotoneCases {
		var m monotone
		for i, raw := range c.raw {
			if got := m.next(raw); got != c.want[i] {
				t.Errorf("%s: read %d (%g) gave %g, want %g", c.name, i, raw, got, c.want[i])
			}
		}
	}
}

// TestConventionCountsThePreview: with the convention, a blue-green
// rollout's new version is counted on its preview Service too, which
// carries its requests before the switch.
func TestConventionCountsThePreview(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Prometheus")
	}
	exp, prom := startMeshPrometheus(t)
	cs, err := NewClusterStats(prom.URL, ClusterQueriesFor(spec.RouterGatewayAPI), Env{})
	if err != nil {
		t.Fatal(err)
	}
	exp.serve("canary", 100, 0, 20)
	exp.serve("preview", 300, 30, 20)
	canary, stable := clusterTargets("v2")
	canary.Preview = "web-preview"
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for {
		err := cs.Refresh(ctx, canary, stable)
		if c := cs.Stats().Canary; err == nil && c.Requests == 400 {
			if c.Errors5xx != 30 {
				t.Errorf("canary 5xx %d, want the preview's 30", c.Errors5xx)
			}
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the canary's requests with its preview's never reached 400 (have %d, last error %v)", cs.Stats().Canary.Requests, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
