package proxy

import (
	"math"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pipit-dev/pipit/internal/proxy/health"
	"github.com/pipit-dev/pipit/internal/traffic"
)

var (
	requestsDesc = prometheus.NewDesc("pipit_proxy_requests_total",
		"Requests through the proxy by upstream role, version and status class ('error': the upstream gave no answer).",
		[]string{"role", "version", "code_class"}, nil)
	durationDesc = prometheus.NewDesc("pipit_proxy_request_duration_seconds",
		"Time from a request's arrival at the proxy to the end of its response.",
		[]string{"role", "version"}, nil)
	weightDesc = prometheus.NewDesc("pipit_proxy_canary_weight_percent",
		"Share of traffic sent to the canary, in percent.", nil, nil)
	visitorsDesc = prometheus.NewDesc("pipit_proxy_visitors_total",
		"Distinct users first routed to the version since the canary was set, with spec.analysis.goals.",
		[]string{"role", "version"}, nil)
	conversionsDesc = prometheus.NewDesc("pipit_proxy_conversions_total",
		"Of those users, the ones who then reached the goal.",
		[]string{"role", "version", "goal"}, nil)
	untrackedDesc = prometheus.NewDesc("pipit_proxy_visits_untracked_total",
		"Requests of users not counted for the goals because the set of users was full (traffic.DefaultMaxUsers).",
		nil, nil)
	upDesc = prometheus.NewDesc("pipit_proxy_upstream_up",
		"1 when the upstream in the role is healthy, 0 when down; absent while unknown.",
		[]string{"role"}, nil)
)

// Collector exports a Proxy's measurements to Prometheus.
type Collector struct {
	p *Proxy
	h *health.Checker
}

// NewCollector returns a collector of p's measurements, and of h's health
// verdicts when h is not nil. Register it on the caller's own registry.
func NewCollector(p *Proxy, h *health.Checker) *Collector { return &Collector{p: p, h: h} }

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- requestsDesc
	ch <- durationDesc
	ch <- weightDesc
	ch <- upDesc
	ch <- visitorsDesc
	ch <- conversionsDesc
	ch <- untrackedDesc
}

// Collect implements prometheus.Collector. A version's series start when
// it takes a role and vanish when it leaves; a version that comes back
// starts from zero, which Prometheus reads as a counter reset.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	s := c.p.Stats()
	for _, r := range [...]struct {
		role string
		vs   *traffic.VersionStats
	}{{RoleStable, &s.Stable}, {RoleCanary, &s.Canary}} {
		if r.vs.Version != "" {
			collectVersion(ch, r.role, r.vs)
		}
		if c.h == nil {
			continue
		}
		if healthy, _, known := c.h.Health(r.role); known {
			up := 0.0
			if healthy {
				up = 1
			}
			ch <- prometheus.MustNewConstMetric(upDesc, prometheus.GaugeValue, up, r.role)
		}
	}
	ch <- prometheus.MustNewConstMetric(weightDesc, prometheus.GaugeValue, c.p.Weight().Float())
	if v := c.p.table.Load().visits; v != nil {
		ch <- prometheus.MustNewConstMetric(untrackedDesc, prometheus.CounterValue, float64(v.Untracked()))
	}
}

func collectVersion(ch chan<- prometheus.Metric, role string, vs *traffic.VersionStats) {
	for class := range traffic.NumClasses {
		ch <- prometheus.MustNewConstMetric(requestsDesc, prometheus.CounterValue, float64(vs.Count(class)), role, vs.Version, class.String())
	}
	buckets := make(map[float64]uint64, len(traffic.ExportBounds))
	for _, b := range traffic.ExportBounds {
		buckets[b] = vs.LatencyBelow(time.Duration(math.Round(b * float64(time.Second))))
	}
	ch <- prometheus.MustNewConstHistogram(durationDesc, vs.LatencyCount(),
		float64(vs.LatencySum())/1e9, buckets, role, vs.Version)
	goals := vs.Goals()
	if len(goals) == 0 {
		return
	}
	// Both versions' counts start over with each canary, which
	// Prometheus reads as a counter reset.
	ch <- prometheus.MustNewConstMetric(visitorsDesc, prometheus.CounterValue, float64(vs.Visitors()), role, vs.Version)
	for _, g := range goals {
		n, _ := vs.Conversions(g)
		ch <- prometheus.MustNewConstMetric(conversionsDesc, prometheus.CounterValue, float64(n), role, vs.Version, g)
	}
}
