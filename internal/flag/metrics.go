package flag

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pipit-dev/pipit/internal/traffic"
)

var (
	evaluationsDesc = prometheus.NewDesc("pipit_flag_evaluations_total",
		"Answers to the flag's evaluations by variant and OFREP reason (ERROR, with no variant, for the refused).",
		[]string{"flag", "variant", "reason"}, nil)
	outcomesDesc = prometheus.NewDesc("pipit_flag_outcomes_total",
		"Outcomes the applications reported for the variant in the role, since the variant took the role.",
		[]string{"flag", "role", "variant", "outcome"}, nil)
	visitorsDesc = prometheus.NewDesc("pipit_flag_visitors_total",
		"With spec.analysis.goals: distinct users first served the variant since the flag was split.",
		[]string{"flag", "role", "variant"}, nil)
	conversionsDesc = prometheus.NewDesc("pipit_flag_conversions_total",
		"Of those users, the ones who then reported reaching the goal.",
		[]string{"flag", "role", "variant", "goal"}, nil)
)

// Collector exports a Live flag's measurements to Prometheus, as
// proxy.Collector does a service's.
type Collector struct{ l *Live }

// NewCollector returns a collector of l's measurements. Register it on
// the caller's own registry.
func NewCollector(l *Live) *Collector { return &Collector{l} }

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- evaluationsDesc
	ch <- outcomesDesc
	ch <- visitorsDesc
	ch <- conversionsDesc
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	key := c.l.flag.key
	c.l.mu.Lock()
	for e, n := range c.l.evaluations {
		ch <- prometheus.MustNewConstMetric(evaluationsDesc, prometheus.CounterValue, float64(n), key, e.variant, e.reason)
	}
	c.l.mu.Unlock()
	s := c.l.Stats()
	for role, vs := range map[string]traffic.VersionStats{"stable": s.Stable, "canary": s.Canary} {
		if vs.Version == "" {
			continue
		}
		ch <- prometheus.MustNewConstMetric(outcomesDesc, prometheus.CounterValue, float64(vs.Count(traffic.Class2xx)), key, role, vs.Version, EventSuccess)
		ch <- prometheus.MustNewConstMetric(outcomesDesc, prometheus.CounterValue, float64(vs.Count(traffic.Class5xx)), key, role, vs.Version, EventError)
		goals := vs.Goals()
		if len(goals) == 0 {
			continue
		}
		ch <- prometheus.MustNewConstMetric(visitorsDesc, prometheus.CounterValue, float64(vs.Visitors()), key, role, vs.Version)
		for _, g := range goals {
			n, _ := vs.Conversions(g)
			ch <- prometheus.MustNewConstMetric(conversionsDesc, prometheus.CounterValue, float64(n), key, role, vs.Version, g)
		}
	}
}
