package notify

import (
	"testing"

	"github.com/pipit-dev/pipit/api/v1alpha1"
)

func TestSeverityOf(t *testing.T) {
	const N, W = v1alpha1.EventNormal, v1alpha1.EventWarning
	cases := []struct {
		typ, reason string
		want        Severity
	}{
		{N, "Installed", SeverityInfo},
		{N, "Started", SeverityInfo},
		{N, "CanaryReplaced", SeverityInfo},
		{N, "CanaryReady", SeverityInfo},
		{N, "WeightChanged", SeverityInfo},
		{N, "CheckPassed", SeverityDebug},
		{N, "CheckInconclusive", SeverityDebug},
		{N, "PauseEnded", SeverityInfo},
		{N, "AwaitingDecision", SeverityInfo},
		{N, "Approved", SeverityInfo},
		{N, "StepSkipped", SeverityInfo},
		{N, "Paused", SeverityInfo},
		{N, "Resumed", SeverityInfo},
		{N, "Promoting", SeverityInfo},
		{N, "PromotedFull", SeverityInfo},
		{N, "Promoted", SeverityInfo},
		{N, "Retried", SeverityInfo},
		{N, "ExperimentStarted", SeverityInfo},
		{N, "ExperimentConcluded", SeverityInfo},
		{W, "CheckFailed", SeverityWarn},
		{W, "AwaitingDecision", SeverityWarn}, // the anomaly gate
		{W, "SomethingNew", SeverityWarn},
		{W, "RollingBack", SeverityError},
		{W, "RolledBack", SeverityError},
		{W, "Aborted", SeverityError},
		{W, "Failed", SeverityError},
		{W, "PostPromotionFailed", SeverityError},
		{N, "PostPromotionPassed", SeverityInfo},
		{W, "HookFailed", SeverityError},
		{W, "PreRolloutHookFailed", SeverityError},
		{N, "HookFailed", SeverityInfo}, // only warnings can be errors
		{"", "Started", SeverityInfo},
	}
	for _, c := range cases {
		if got := SeverityOf(v1alpha1.Event{Type: c.typ, Reason: c.reason}); got != c.want {
			t.Errorf("SeverityOf(%s %s) = %s, want %s", c.typ, c.reason, got, c.want)
		}
	}
}
