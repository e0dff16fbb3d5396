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

// exportedSeries names one family of series: the request counter and
// its code label, the latency histogram, and how many of its unit a
// millisecond is.
type exportedSeries struct {
	requests, code, bucket, sum string
	perMs                       float64
}

var (
	istioSeries      = exportedSeries{"istio_requests_total", "response_code", "istio_request_duration_milliseconds_bucket", "istio_request_duration_milliseconds_sum", 1}
	conventionSeries = exportedSeries{"http_requests_total", "code", "http_request_duration_seconds_bucket", "http_request_duration_seconds_sum", 0.001}
	envoySeries      = exportedSeries{"envoy_cluster_upstream_rq", "envoy_response_code", "envoy_cluster_upstream_rq_time_bucket", "envoy_cluster_upstream_rq_time_sum", 1}
)

// envoyClusters are the Envoy Gateway clusters whose series count each
// role's requests. Each role's counts are also exported under decoys
// (envoyDecoys) that a query which does not quote the dot or anchor the
// name would count too.
var envoyClusters = map[string]string{
	"canary":  "httproute/shop/web.v/rule/3/backend/1",
	"stable":  "httproute/shop/web.v/rule/3/backend/0",
	"preview": "httproute/shop/web.v/rule/0/backend/0",
}

func envoyDecoys(name string) []string {
	return []string{strings.Replace(name, ".", "x", 1), name + "0"}
}

// ServeHTTP writes Istio's series, the convention's and Envoy Gateway's
// for every role.
func (e *meshExporter) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	e.mu.Lock()
	defer e.mu.Unlock()
	var b strings.Builder
	for _, role := range exportedRoles {
		v := e.versions[role]
		v.write(&b, istioSeries, fmt.Sprintf(`reporter="destination",destination_workload_namespace="shop",destination_workload="web-%s"`, role))
		v.write(&b, conventionSeries, fmt.Sprintf(`namespace="shop",service="web-%s"`, role))
		for _, name := range append([]string{envoyClusters[role]}, envoyDecoys(envoyClusters[role])...) {
			v.write(&b, envoySeries, fmt.Sprintf(`envoy_cluster_name=%q`, name))
		}
	}
	_, _ = w.Write([]byte(b.String()))
}

// write writes the version's series of one family, labelled labels.
func (v *exportedVersion) write(b *strings.Builder, s exportedSeries, labels string) {
	for code, n := range v.codes {
		fmt.Fprintf(b, "%s{%s,%s=\"%d\"} %d\n", s.requests, labels, s.code, code, n)
	}
	var cumulative uint64
	for i, n := range v.buckets {
		cumulative += n
		le := "+Inf"
		if i < len(exportBoundsMs) {
			le = fmt.Sprint(exportBoundsMs[i] * s.perMs)
		}
		fmt.Fprintf(b, "%s{%s,le=%q} %d\n", s.bucket, labels, le, cumulative)
	}
	fmt.Fprintf(b, "%s{%s} %g\n", s.sum, labels, v.sumMs*s.perMs)
}

// clusterTargets are the objects the exporter's series name.
func clusterTargets(canaryVersion string) (canary, stable ClusterTarget) {
	return ClusterTarget{Version: canaryVersion, Namespace: "shop", Service: "web-canary", Workload: "web-canary",
			EnvoyClusters: []string{envoyClusters["canary"]}},
		ClusterTarget{Version: "v1", Namespace: "shop", Service: "web-stable", Workload: "web-stable",
			EnvoyClusters: []string{envoyClusters["stable"]}}
}

// refreshUntil refreshes until the canary has served want requests since
// the start, that is until Prometheus scraped the last traffic.
func refreshUntil(t *testing.T, cs *ClusterStats, canaryVersion string, want uint64) {
	t.Helper()
	canary, stable := clusterTargets(canaryVersion)
	refreshCanaryUntil(t, cs, canary, stable, want)
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

// clusterPlans are the routers whose series the exporter exports, by name.
var clusterPlans = map[string]spec.KubePlan{
	"istio":        {Router: spec.RouterIstio},
	"gatewayAPI":   {Router: spec.RouterGatewayAPI},
	"envoyGateway": {Router: spec.RouterGatewayAPI, Gateway: v1alpha1.EnvoyGateway},
	"replicas":     {Router: spec.RouterReplicas},
}

// TestClusterBuiltinMetrics measures a good and then a bad canary from
// each router's series in a real Prometheus: the values, the threshold's
// verdict and the sequential test's alarm.
func TestClusterBuiltinMetrics(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Prometheus")
	}
	exp, prom := startMeshPrometheus(t)
	for name, plan := range clusterPlans {
		t.Run(name, func(t *testing.T) {
			cs, err := NewClusterStats(prom.URL, ClusterQueriesFor(plan), Env{})
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

// TestClusterSumsTheCanarysObjects: a version's counts are the sum over
// its objects: with the convention, a blue-green rollout's new version is
// counted on its preview Service too, which carries its requests before
// the switch; with Envoy Gateway, the canary is counted on each cluster
// the route sends to it (the preview's cluster standing for a second
// one here).
func TestClusterSumsTheCanarysObjects(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Prometheus")
	}
	exp, prom := startMeshPrometheus(t)
	exp.serve("canary", 100, 0, 20)
	exp.serve("preview", 300, 30, 20)
	for name, plan := range map[string]spec.KubePlan{"convention": clusterPlans["gatewayAPI"], "envoyGateway": clusterPlans["envoyGateway"]} {
		t.Run(name, func(t *testing.T) {
			cs, err := NewClusterStats(prom.URL, ClusterQueriesFor(plan), Env{})
			if err != nil {
				t.Fatal(err)
			}
			canary, stable := clusterTargets("v2")
			canary.Preview = "web-preview"
			canary.EnvoyClusters = append(canary.EnvoyClusters, envoyClusters["preview"])
			refreshCanaryUntil(t, cs, canary, stable, 400)
			if c := cs.Stats().Canary; c.Errors5xx != 30 {
				t.Errorf("canary 5xx %d, want the preview's 30", c.Errors5xx)
			}
		})
	}
}

// refreshCanaryUntil refreshes until the canary has served want requests.
func refreshCanaryUntil(t *testing.T, cs *ClusterStats, canary, stable ClusterTarget, want uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
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
