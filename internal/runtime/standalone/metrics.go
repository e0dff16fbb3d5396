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
	return reg.Register(planeCollector{m})
}

// planeCollector exposes the measurements of a rollout's current proxy and
// health checks, or of its current flag, which a reload may rebuild. A
// rollout stays a service or a flag for life, so what it describes never
// changes.
type planeCollector struct{ m *managed }

func (c planeCollector) current() prometheus.Collector {
	pl := c.m.dataPlane()
	if pl.flag != nil {
		return flag.NewCollector(pl.flag)
	}
	return proxy.NewCollector(pl.proxy, pl.checker)
}

// Describe implements prometheus.Collector.
func (c planeCollector) Describe(ch chan<- *prometheus.Desc) { c.current().Describe(ch) }

// Collect implements prometheus.Collector.
func (c planeCollector) Collect(ch chan<- prometheus.Metric) { c.current().Collect(ch) }
