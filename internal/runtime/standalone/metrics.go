package standalone

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/proxy"
)

// registerMetrics registers the measurements of m's proxy with reg; a
// flag has no proxy, and its outcomes are in its view.
func (m *managed) registerMetrics(reg prometheus.Registerer) error {
	if m.dataPlane().proxy == nil {
		return nil
	}
	return reg.Register(planeCollector{m})
}

// planeCollector exposes the measurements of a rollout's current proxy and
// health checks, which a reload may rebuild.
type planeCollector struct{ m *managed }

func (c planeCollector) current() *proxy.Collector {
	pl := c.m.dataPlane()
	return proxy.NewCollector(pl.proxy, pl.checker)
}

// Describe implements prometheus.Collector.
func (c planeCollector) Describe(ch chan<- *prometheus.Desc) { c.current().Describe(ch) }

// Collect implements prometheus.Collector.
func (c planeCollector) Collect(ch chan<- prometheus.Metric) { c.current().Collect(ch) }

var (
	phaseDesc = prometheus.NewDesc("pipit_rollout_phase", "1 for the rollout's current phase, 0 for the others.",
		[]string{"rollout", "phase"}, nil)
	weightDesc = prometheus.NewDesc("pipit_rollout_canary_weight_percent", "The canary's share of traffic decided by the engine, in percent.",
		[]string{"rollout"}, nil)
	stepDesc = prometheus.NewDesc("pipit_rollout_step", "Index of the step being run, from 0.",
		[]string{"rollout"}, nil)
	checksDesc = prometheus.NewDesc("pipit_rollout_checks", "Analysis checks in the current rollout, by outcome.",
		[]string{"rollout", "outcome"}, nil)
)

var allPhases = []v1alpha1.Phase{
	v1alpha1.PhaseIdle, v1alpha1.PhaseProgressing, v1alpha1.PhasePaused, v1alpha1.PhaseAwaitingDecision,
	v1alpha1.PhasePromoting, v1alpha1.PhaseSucceeded, v1alpha1.PhaseRollingBack, v1alpha1.PhaseRolledBack,
	v1alpha1.PhaseAborted, v1alpha1.PhaseFailed,
}

// statusCollector exposes each rollout's engine state, read at scrape time.
type statusCollector struct{ d *Daemon }

func (c *statusCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- phaseDesc
	ch <- weightDesc
	ch <- stepDesc
	ch <- checksDesc
}

func (c *statusCollector) Collect(ch chan<- prometheus.Metric) {
	for _, m := range c.d.all() {
		name, st := m.name, m.snapshot()
		for _, p := range allPhases {
			v := 0.0
			if st.Phase == p {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(phaseDesc, prometheus.GaugeValue, v, name, string(p))
		}
		ch <- prometheus.MustNewConstMetric(weightDesc, prometheus.GaugeValue, st.CanaryWeight.Float(), name)
		ch <- prometheus.MustNewConstMetric(stepDesc, prometheus.GaugeValue, float64(st.CurrentStep), name)
		ch <- prometheus.MustNewConstMetric(checksDesc, prometheus.GaugeValue, float64(st.Analysis.PassedChecks), name, "passed")
		ch <- prometheus.MustNewConstMetric(checksDesc, prometheus.GaugeValue, float64(st.Analysis.FailedChecks), name, "failed")
	}
}
