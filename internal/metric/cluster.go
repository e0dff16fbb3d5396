package metric

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/common/model"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/spec"
	"github.com/pipit-dev/pipit/internal/traffic"
)

// In a cluster the built-in metrics come from the counters the mesh, the
// gateway or the application already exports to Prometheus: the
// controller reads each version's cumulative request count, 5xx count and
// latency histogram at every tick (ClusterStats), which gives Builtin the
// same cumulative counts the proxy gives in standalone mode. Thresholds,
// the sequential error-rate test and the comparison of samples then work
// unchanged. Each router's series are in a file of their own
// (cluster_istio.go, cluster_envoygateway.go, cluster_convention.go).

// ClusterTarget names one version's objects, which the series are
// labelled by: those of every Deployment of the rollout, whose traffic
// the built-in metrics sum.
type ClusterTarget struct {
	// Version is the version the role runs; empty when it runs none.
	Version string
	// Namespace is the rollout's.
	Namespace string
	// Services are pipit's Services of the version (the stable or the
	// canary ones), and for the new version of a blue-green rollout the
	// preview Services too, which carry its requests before the switch.
	Services []string
	// Workloads are the version's copies of the Deployments.
	Workloads []string
	// EnvoyClusters are the Envoy clusters that Envoy Gateway builds for
	// the route's backendRefs to the version's Services.
	EnvoyClusters []string
}

// ClusterTargets are the objects of the canary and of the stable of the
// Deployments plans name; the versions and Envoy clusters are the
// caller's to fill in.
func ClusterTargets(plans []spec.KubePlan) (canary, stable ClusterTarget) {
	for _, p := range plans {
		canary.Namespace, stable.Namespace = p.Namespace, p.Namespace
		canary.Services = append(canary.Services, p.CanaryService)
		if p.PreviewService != "" {
			canary.Services = append(canary.Services, p.PreviewService)
		}
		stable.Services = append(stable.Services, p.StableService)
		canary.Workloads = append(canary.Workloads, p.CanaryWorkload)
		stable.Workloads = append(stable.Workloads, p.StableWorkload)
	}
	return canary, stable
}

// oneOf is a PromQL label matcher (=~ and a string) selecting the values
// names and no other. Without names it selects only an empty or missing
// label, which the series read all have.
func oneOf(names []string) string {
	quoted := make([]string, len(names))
	for i, name := range names {
		quoted[i] = regexp.QuoteMeta(name)
	}
	// strconv.Quote makes the expression a PromQL string, escaping the
	// backslashes of the quoting.
	return "=~" + strconv.Quote("^("+strings.Join(quoted, "|")+")$")
}

// SeriesQueries are the PromQL of one version's cumulative counts, each
// giving one number except Buckets.
type SeriesQueries struct {
	// OK counts the requests the version answered with anything but a
	// 5xx, Errors those it answered 5xx. They are two counters rather
	// than a total and a part, so that a scrape landing between the two
	// queries cannot make one of them go down.
	OK, Errors string
	// Buckets gives the latency histogram's cumulative buckets, one
	// series per le label; Sum the sum of the latencies.
	Buckets, Sum string
	// Unit is the unit of le and of Sum.
	Unit time.Duration
}

// ClusterQueries are where one router's series are.
type ClusterQueries interface {
	Queries(t ClusterTarget) SeriesQueries
}

// ClusterQueriesFor returns the series of a plan's router: Istio's
// standard metrics for istio and the Gateway API router of Istio's
// implementation, Envoy's for the Gateway API router of Envoy Gateway,
// the application's own (the documented convention) for the others.
func ClusterQueriesFor(p spec.KubePlan) ClusterQueries {
	gateway := p.Router == spec.RouterGatewayAPI
	switch {
	case p.Router == spec.RouterIstio, gateway && p.Gateway == v1alpha1.IstioGateway:
		return istioQueries{}
	case gateway && p.Gateway == v1alpha1.EnvoyGateway:
		return envoyGatewayQueries{}
	}
	return conventionQueries{}
}

// ClusterStats reads the cumulative counts of the canary and the stable
// from Prometheus at each Refresh, and serves the last ones read as a
// StatsSource. Counts that go down (a pod restarted, or left the sum)
// are carried over, so what it serves only grows.
type ClusterStats struct {
	prom    *Prometheus
	queries ClusterQueries

	refresh sync.Mutex // one Refresh at a time: it owns track and high
	track   map[string]*monotone
	high    map[string]float64 // the highest own count of each bucket

	mu   sync.Mutex
	snap traffic.Stats
}

// NewClusterStats returns a source reading the series of queries from the
// Prometheus at address; it sends nothing yet.
func NewClusterStats(address string, queries ClusterQueries, env Env) (*ClusterStats, error) {
	p, err := newPrometheusClient(v1alpha1.PrometheusProvider{Address: address}, env)
	if err != nil {
		return nil, err
	}
	return &ClusterStats{prom: p, queries: queries, track: map[string]*monotone{}, high: map[string]float64{}}, nil
}

// Stats returns the counts of the last Refresh.
func (c *ClusterStats) Stats() traffic.Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.snap
}

// Refresh reads both versions' counts now. A role that could not be read
// keeps its previous counts, and the error says which.
func (c *ClusterStats) Refresh(ctx context.Context, canary, stable ClusterTarget) error {
	c.refresh.Lock()
	defer c.refresh.Unlock()
	can, errCanary := c.read(ctx, "canary", canary)
	st, errStable := c.read(ctx, "stable", stable)
	c.mu.Lock()
	defer c.mu.Unlock()
	if errCanary == nil {
		c.snap.Canary = can
	}
	if errStable == nil {
		c.snap.Stable = st
	}
	return errors.Join(errCanary, errStable)
}

// read reads one version's counts. The series are read whether or not
// the role runs a version now, so that its counts go on from one version
// to the next, as the proxy's windows need.
func (c *ClusterStats) read(ctx context.Context, role string, t ClusterTarget) (traffic.VersionStats, error) {
	q := c.queries.Queries(t)
	ok, err := c.count(ctx, q.OK)
	if err != nil {
		return traffic.VersionStats{}, fmt.Errorf("%s requests: %w", role, err)
	}
	failed, err := c.count(ctx, q.Errors)
	if err != nil {
		return traffic.VersionStats{}, fmt.Errorf("%s errors: %w", role, err)
	}
	sum, err := c.count(ctx, q.Sum)
	if err != nil {
		return traffic.VersionStats{}, fmt.Errorf("%s latency sum: %w", role, err)
	}
	buckets, err := c.buckets(ctx, role, q)
	if err != nil {
		return traffic.VersionStats{}, fmt.Errorf("%s latency buckets: %w", role, err)
	}
	ok = c.grow(role+" ok", ok)
	failed = c.grow(role+" 5xx", failed)
	total := time.Duration(c.grow(role+" sum", sum) * float64(q.Unit))
	return traffic.Imported(t.Version, uint64(ok), uint64(failed), buckets, total), nil
}

// count reads one number; no series yet is zero.
func (c *ClusterStats) count(ctx context.Context, query string) (float64, error) {
	x, err := c.prom.instant(ctx, query)
	if errors.Is(err, ErrNoData) {
		return 0, nil
	}
	return x, err
}

// buckets reads the latency histogram. Each cumulative bucket is a
// counter, carried over its drops like the other counts; a bucket's own
// count, the difference of two of them, only ever rises to a new high, so
// that a scrape landing while the buckets are read is not counted twice.
func (c *ClusterStats) buckets(ctx context.Context, role string, q SeriesQueries) ([]traffic.Bucket, error) {
	v, err := c.prom.queryNow(ctx, q.Buckets)
	if err != nil {
		return nil, err
	}
	vec, ok := v.(model.Vector)
	if !ok {
		return nil, fmt.Errorf("prometheus: the query returned a %s, want a vector by le", v.Type())
	}
	type bucket struct {
		le    float64
		count float64
	}
	bs := make([]bucket, 0, len(vec))
	for _, s := range vec {
		le, err := strconv.ParseFloat(string(s.Metric[model.BucketLabel]), 64)
		if err != nil {
			return nil, fmt.Errorf("prometheus: series %s has no numeric le label", s.Metric)
		}
		bs = append(bs, bucket{le, c.grow(fmt.Sprintf("%s le=%g", role, le), float64(s.Value))})
	}
	slices.SortFunc(bs, func(a, b bucket) int { return cmp.Compare(a.le, b.le) })
	out := make([]traffic.Bucket, 0, len(bs))
	var below, cumulative float64
	for _, b := range bs {
		key := fmt.Sprintf("%s own le=%g", role, b.le)
		c.high[key] = max(c.high[key], b.count-below)
		below = max(below, b.count)
		cumulative += c.high[key]
		bound := traffic.Unbounded
		if !math.IsInf(b.le, 1) {
			bound = time.Duration(b.le * float64(q.Unit))
		}
		out = append(out, traffic.Bucket{UpperBound: bound, Count: uint64(cumulative)})
	}
	return out, nil
}

// grow carries the count of one series over its drops.
func (c *ClusterStats) grow(key string, raw float64) float64 {
	m := c.track[key]
	if m == nil {
		m = &monotone{}
		c.track[key] = m
	}
	return m.next(raw)
}

// monotone turns a count that may go down (a pod's counters started
// again, or a pod left the sum) into one that only grows: a drop is
// carried over, so the count stays where it was and grows from there. It
// loses the requests of a restarted pod before its first scrape, rather
// than count the pods that left twice.
type monotone struct{ last, offset float64 }

func (m *monotone) next(raw float64) float64 {
	if raw < m.last {
		m.offset += m.last - raw
	}
	m.last = raw
	return math.Round(raw + m.offset)
}
