package cli

import (
	"strings"
	"testing"
	"time"

	"github.com/pipit-dev/pipit/api/v1alpha1"
)

// TestTargetsShown checks that get and status list the Deployments of a
// coordinated rollout, and nothing of the kind for other rollouts.
func TestTargetsShown(t *testing.T) {
	now := time.Date(2026, 7, 1, 9, 5, 0, 0, time.UTC)
	v := webView(now)
	if strings.Contains(watchView(v), "DEPLOYMENT") || strings.Contains(statusDetail(v, now), "Deployments:") {
		t.Errorf("a rollout of one Deployment lists Deployments")
	}
	v.Status.Targets = []v1alpha1.TargetStatus{
		{Name: "frontend", StableRevision: "aaaa", StableVersion: "web:1", StableReady: 3, CanaryRevision: "bbbb", CanaryVersion: "web:2", CanaryReady: 1},
		{Name: "backend", StableRevision: "cccc", StableVersion: "api:1", StableReady: 2},
	}
	want := "DEPLOYMENT  STABLE        READY  CANARY        READY\n" +
		"frontend    web:1 (aaaa)  3      web:2 (bbbb)  1\n" +
		"backend     api:1 (cccc)  2      -             -\n"
	if got := watchView(v); !strings.Contains(got, want) {
		t.Errorf("get lacks\n%s\nin\n%s", want, got)
	}
	if got := statusDetail(v, now); !strings.Contains(got, "\nDeployments:\n  DEPLOYMENT  STABLE") ||
		!strings.Contains(got, "  backend     api:1 (cccc)  2      -") {
		t.Errorf("status lacks the Deployments:\n%s", got)
	}
}
