package metric

import (
	"fmt"
	"time"
)

// istioQueries read Istio's standard metrics as the destination's sidecar
// reports them, by the version's workloads (pipit's copies of the
// Deployments): so whether the VirtualService routes by Service or by a
// DestinationRule's subsets does not matter.
type istioQueries struct{}

func (istioQueries) Queries(t ClusterTarget) SeriesQueries {
	sel := fmt.Sprintf(`reporter="destination",destination_workload_namespace=%q,destination_workload%s`, t.Namespace, oneOf(t.Workloads))
	return SeriesQueries{
		OK:      fmt.Sprintf(`sum(istio_requests_total{%s,response_code!~"5.."})`, sel),
		Errors:  fmt.Sprintf(`sum(istio_requests_total{%s,response_code=~"5.."})`, sel),
		Buckets: fmt.Sprintf(`sum by (le) (istio_request_duration_milliseconds_bucket{%s})`, sel),
		Sum:     fmt.Sprintf(`sum(istio_request_duration_milliseconds_sum{%s})`, sel),
		Unit:    time.Millisecond,
	}
}
