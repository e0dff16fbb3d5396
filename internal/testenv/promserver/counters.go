package promserver

import (
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"
)

// Counters serves, for Prometheus to scrape, counters that grow steadily
// from 0 at the call, as a running application's do: perSecond maps each
// series, written as the text format writes it (name and labels, such as
// shop_visitors_total{service="web-canary"}), to how much it grows a
// second. It returns the URL to scrape; the server closes when the test
// ends.
func Counters(t testing.TB, perSecond map[string]float64) string {
	t.Helper()
	start := time.Now()
	series := slices.Sorted(maps.Keys(perSecond))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		secs := time.Since(start).Seconds()
		for _, s := range series {
			fmt.Fprintf(w, "%s %d\n", s, int64(secs*perSecond[s]))
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/metrics"
}
