package standalone

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pipit-dev/pipit/internal/flag"
	"github.com/pipit-dev/pipit/internal/proxy"
)

// metricsNamespace is the namespace label of the standalone daemon's
// rollout series: empty, which Prometheus stores as no label at all, as
// standalone rollouts have no namespace.
const metricsNamespace = ""

// registerMetrics registers the measurements of m's proxy, or of its
// flag, with reg.
func (m *managed) registerMetrics(reg prometheus.Registerer) error {
	pl := m.dataPlane()
	if pl.flag != nil {
		// A reload keeps a flag rollout's plane (it cannot change one).
		return reg.Register(flag.NewCollector(pl.flag))
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
