package hook

import (
	"context"
	"strings"
	"testing"

	"github.com/pipit-dev/pipit/api/v1alpha1"
)

func TestRunRefusesInvalidSpec(t *testing.T) {
	res := Runner{}.Run(context.Background(), v1alpha1.WebhookSpec{Name: "bad", Type: v1alpha1.HookRollout}, Payload{})
	if res.OK || res.Err == nil || res.Attempts != 0 || !strings.Contains(res.Err.Error(), "exactly one of") {
		t.Fatalf("Run = %+v, want the spec's problem without an attempt", res)
	}
}

func TestBackoffGrowsWithinBounds(t *testing.T) {
	for n := 1; n <= 40; n++ {
		d := min(baseBackoff<<min(n-1, 10), maxBackoff)
		for range 20 {
			if got := backoff(n); got < d/2 || got >= d {
				t.Fatalf("backoff(%d) = %s, want in [%s, %s)", n, got, d/2, d)
			}
		}
	}
}

func TestBound(t *testing.T) {
	tests := []struct{ in, want string }{
		{"  short\n", "short"},
		{"bad \xff byte", "bad \uFFFD byte"},
		{strings.Repeat("a", MaxMessage), strings.Repeat("a", MaxMessage)},
		{strings.Repeat("a", MaxMessage+1), strings.Repeat("a", MaxMessage-3) + "…"},
		{strings.Repeat("€", 400), strings.Repeat("€", 340) + "…"}, // 3-byte runes are not split
	}
	for _, tt := range tests {
		if got := bound(tt.in); got != tt.want {
			t.Errorf("bound(%.20q…) = %.20q… (%d bytes), want %d bytes", tt.in, got, len(got), len(tt.want))
		}
	}
}
