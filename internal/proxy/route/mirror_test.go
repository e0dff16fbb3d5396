package route

import (
	"testing"

	"github.com/pipit-dev/pipit/api/v1alpha1"
)

// TestMirrorShare: at 20% about a fifth of stable's requests are copied.
func TestMirrorShare(t *testing.T) {
	tab := trafficTable(t, &v1alpha1.TrafficSpec{Mirror: &v1alpha1.Mirror{Percent: v1alpha1.PercentOf(20)}}, 0)
	r := req("/")
	n, copies := 50_000, 0
	for range n {
		if tab.Route(r).Mirror {
			copies++
		}
	}
	if share := 100 * float64(copies) / float64(n); share < 19 || share > 21 { // sd 0.18 points
		t.Fatalf("%.2f%% of requests mirrored at 20%%", share)
	}
	// Requests sent to the canary are never copied to it.
	tab = trafficTable(t, &v1alpha1.TrafficSpec{Mirror: &v1alpha1.Mirror{Percent: v1alpha1.PercentOf(100)}}, v1alpha1.FullWeight)
	if d := tab.Route(r); d.Mirror {
		t.Fatal("a request routed to the canary was mirrored")
	}
}
