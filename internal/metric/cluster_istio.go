package metric

import (
	"fmt"
	"time"
)

// istioQueries read Istio's standard metrics as the destination's sidecar
// reports them, by the version's workload (pipit's copy of the
// Deployment): so whether the VirtualService routes by Service or by a
// DestinationRule's subsets does not matter.
type istioQueries struct{}

func (istioQueries) Queries(t ClusterTarget) SeriesQueries {
	sel := fmt.Sprintf(`reporter="destination",destination_workload_namespace=%q,destination_workload=%q`, t.Namespace, t.Workload)
	return SeriesQueries{
		OK:      fmt.Sprintf(`sum(istio_requests_total{%s,response_code!~"5.."})`, sel),
		Errors:  fmt.Sprintf(`sum(istio_requests_total{%s,response_code=~"5.."})`, sel),
		Buckets: fmt.Sprintf(`sum by (le) (istio_request_duration_milliseconds_bucket{%s})`, sel),
		Sum:     fmt.Sprintf(`sum(istio_request_duration_milliseconds_sum{%s})`, sel),
		Unit:    time.Millisecond,
	}
}
