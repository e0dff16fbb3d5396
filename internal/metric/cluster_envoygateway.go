package metric

import (
	"fmt"
	"time"
)

// envoyGatewayQueries read the series Envoy exports for the clusters
// Envoy Gateway builds, one per backendRef once each backendRef carries a
// filter (which the Gateway API router adds for Envoy Gateway), named by
// the route, the rule and the backendRef: a counter per response code,
// and the upstream time histogram in milliseconds. This needs Envoy
// Gateway's default stat names: with a custom clusterStatName every
// cluster of a rule has the same one.
type envoyGatewayQueries struct{}

func (envoyGatewayQueries) Queries(t ClusterTarget) SeriesQueries {
	sel := "envoy_cluster_name" + oneOf(t.EnvoyClusters)
	return SeriesQueries{
		OK:      fmt.Sprintf(`sum(envoy_cluster_upstream_rq{%s,envoy_response_code!~"5.."})`, sel),
		Errors:  fmt.Sprintf(`sum(envoy_cluster_upstream_rq{%s,envoy_response_code=~"5.."})`, sel),
		Buckets: fmt.Sprintf(`sum by (le) (envoy_cluster_upstream_rq_time_bucket{%s})`, sel),
		Sum:     fmt.Sprintf(`sum(envoy_cluster_upstream_rq_time_sum{%s})`, sel),
		Unit:    time.Millisecond,
	}
}
