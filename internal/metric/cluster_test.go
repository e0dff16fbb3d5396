package metric

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
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
	versions map[string]*exportedVersion // by object
}

// exportedVersion is one version's cumulative traffic: requests by
// status code and a latency histogram in milliseconds.
type exportedVersion struct {
	codes   map[int]uint64
	buckets []uint64 // per bound of exportBoundsMs, not cumulative; the last is +Inf
	sumMs   float64
}

// exportedObjects are the objects the series name, each a workload and a
// Service of that name: the versions of two Deployments, web and api,
// and web-preview, a blue-green rollout's preview Service.
var exportedObjects = []string{"web-canary", "web-stable", "web-preview", "api-canary", "api-stable"}

// exportBoundsMs are Istio's default bucket bounds, in milliseconds.
var exportBoundsMs = []float64{0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000}

func newMeshExporter() *meshExporter {
	e := &meshExporter{versions: map[string]*exportedVersion{}}
	for _, obj := range exportedObjects {
		e.versions[obj] = &exportedVersion{codes: map[int]uint64{}, buckets: make([]uint64, len(exportBoundsMs)+1)}
	}
	return e
}

// serve counts n requests of obj, failed of them 5xx, each taking ms.
func (e *meshExporter) serve(obj string, n, failed uint64, ms float64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	v := e.versions[obj]
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
// object's requests. Each object's counts are also exported under decoys
// (envoyDecoys) that a query which does not quote the dot or anchor the
// name would count too.
var envoyClusters = map[string]string{
	"web-canary":  "httproute/shop/web.v/rule/3/backend/1",
	"web-stable":  "httproute/shop/web.v/rule/3/backend/0",
	"web-preview": "httproute/shop/web.v/rule/0/backend/0",
	"api-canary":  "httproute/shop/api.v/rule/0/backend/1",
	"api-stable":  "httproute/shop/api.v/rule/0/backend/0",
}

func envoyDecoys(name string) []string {
	return []string{strings.Replace(name, ".", "x", 1), name + "0"}
}

// ServeHTTP writes Istio's series, the convention's and Envoy Gateway's
// for every object.
func (e *meshExporter) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	e.mu.Lock()
	defer e.mu.Unlock()
	var b strings.Builder
	for _, obj := range exportedObjects {
		v := e.versions[obj]
		v.write(&b, istioSeries, fmt.Sprintf(`reporter="destination",destination_workload_namespace="shop",destination_workload=%q`, obj))
		v.write(&b, conventionSeries, fmt.Sprintf(`namespace="shop",service=%q`, obj))
		for _, name := range append([]string{envoyClusters[obj]}, envoyDecoys(envoyClusters[obj])...) {
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

// exportedPlan is the plan of Deployment name, whose objects the
// exporter's series name.
func exportedPlan(name string) spec.KubePlan {
	return spec.KubePlan{Namespace: "shop", Target: name, StableService: name + "-stable", CanaryService: name + "-canary",
		StableWorkload: name + "-stable", CanaryWorkload: name + "-canary"}
}

// clusterTargets are the objects of the Deployments names, with the Envoy
// clusters the router would name.
func clusterTargets(canaryVersion string, names ...string) (canary, stable ClusterTarget) {
	var plans []spec.KubePlan
	for _, name := range names {
		plans = append(plans, exportedPlan(name))
		canary.EnvoyClusters = append(canary.EnvoyClusters, envoyClusters[name+"-canary"])
		stable.EnvoyClusters = append(stable.EnvoyClusters, envoyClusters[name+"-stable"])
	}
	c, s := ClusterTargets(plans)
	c.Version, c.EnvoyClusters = canaryVersion, canary.EnvoyClusters
	s.Version, s.EnvoyClusters = "v1", stable.EnvoyClusters
	return c, s
}

// refreshUntil refreshes until the canary has served want requests since
// the start, that is until Prometheus scraped the last traffic.
func refreshUntil(t *testing.T, cs *ClusterStats, canaryVersion string, want uint64) {
	t.Helper()
	canary, stable := clusterTargets(canaryVersion, "web")
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
	"istioGateway": {Router: spec.RouterGatewayAPI, Gateway: v1alpha1.IstioGateway},
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
			base := exp.versions["web-canary"].codes[200] + exp.versions["web-canary"].codes[503]
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

	exp.serve("web-canary", 1000, 0, 20)
	exp.serve("web-stable", 9000, 9, 20)
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

	exp.serve("web-canary", 1000, 100, 700)
	exp.serve("web-stable", 9000, 9, 20)
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

// TestClusterSumsTheDeployments: a version's counts are the sum over the
// Deployments of the rollout, each read with the router's series; with
// the convention a blue-green rollout's new version is counted on its
// preview Service too, which carries its requests before the switch.
func TestClusterSumsTheDeployments(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Prometheus")
	}
	exp, prom := startMeshPrometheus(t)
	exp.serve("web-canary", 100, 0, 20)
	exp.serve("api-canary", 300, 30, 20)
	exp.serve("web-preview", 50, 5, 20)
	exp.serve("api-stable", 7, 0, 20)
	for name, plan := range clusterPlans {
		t.Run(name, func(t *testing.T) {
			cs, err := NewClusterStats(prom.URL, ClusterQueriesFor(plan), Env{})
			if err != nil {
				t.Fatal(err)
			}
			canary, stable := clusterTargets("v2", "web", "api")
			canary.Services = append(canary.Services, "web-preview")
			requests, failed := uint64(400), uint64(30)
			if ClusterQueriesFor(plan) == (conventionQueries{}) {
				requests, failed = 450, 35 // the convention's, with the preview
			}
			refreshCanaryUntil(t, cs, canary, stable, requests)
			if got := cs.Stats(); got.Canary.Errors5xx != failed || got.Stable.Requests != 7 {
				t.Errorf("canary 5xx %d, stable requests %d: want %d, 7", got.Canary.Errors5xx, got.Stable.Requests, failed)
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

// TestClusterTargetsListEveryDeployment: the targets name the objects of
// every Deployment, in the spec's order, the canary's preview Services
// with its own.
func TestClusterTargetsListEveryDeployment(t *testing.T) {
	web, api := exportedPlan("web"), exportedPlan("api")
	web.PreviewService = "web-preview"
	canary, stable := ClusterTargets([]spec.KubePlan{web, api})
	want := []ClusterTarget{
		{Namespace: "shop", Services: []string{"web-canary", "web-preview", "api-canary"}, Workloads: []string{"web-canary", "api-canary"}},
		{Namespace: "shop", Services: []string{"web-stable", "api-stable"}, Workloads: []string{"web-stable", "api-stable"}},
	}
	for i, got := range []ClusterTarget{canary, stable} {
		if !reflect.DeepEqual(got, want[i]) {
			t.Errorf("target %d: %+v, want %+v", i, got, want[i])
		}
	}
}
