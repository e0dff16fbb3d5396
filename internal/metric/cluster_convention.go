package metric

import (
	"fmt"
	"time"
)

// conventionQueries read the application's own metrics, scraped from its
// pods through pipit's per-version Services (a ServiceMonitor or
// Prometheus' kubernetes endpoints discovery labels each series with the
// namespace and the Service): http_requests_total with a code label, and
// the http_request_duration_seconds histogram, the names of Prometheus'
// client libraries' HTTP middleware. The replica router has no proxy of
// its own to count requests, and Gateway API implementations other than
// Envoy Gateway (see envoyGatewayQueries) count them by route rule rather
// than by backend, so both read these.
type conventionQueries struct{}

func (conventionQueries) Queries(t ClusterTarget) SeriesQueries {
	sel := fmt.Sprintf(`namespace=%q,service%s`, t.Namespace, oneOf(t.Services))
	return SeriesQueries{
		OK:      fmt.Sprintf(`sum(http_requests_total{%s,code!~"5.."})`, sel),
		Errors:  fmt.Sprintf(`sum(http_requests_total{%s,code=~"5.."})`, sel),
		Buckets: fmt.Sprintf(`sum by (le) (http_request_duration_seconds_bucket{%s})`, sel),
		Sum:     fmt.Sprintf(`sum(http_request_duration_seconds_sum{%s})`, sel),
		Unit:    time.Second,
	}
}
