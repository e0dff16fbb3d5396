package notify

import (
	"strings"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/spec"
)

// Severity orders events by how much they matter to the people notified;
// the spec defines it (see spec.Severity), this package says which events
// have which severity.
type Severity = spec.Severity

// Severities, least first.
const (
	SeverityDebug = spec.SeverityDebug
	SeverityInfo  = spec.SeverityInfo
	SeverityWarn  = spec.SeverityWarn
	SeverityError = spec.SeverityError
)

// SeverityOf says how much an event matters:
//
//	Type     Reason                                         Severity
//	Warning  RollingBack, RolledBack, Aborted, Failed,       error
//	         PostPromotionFailed (the watch undid a promotion)
//	Warning  HookFailed, or any reason ending in HookFailed  error
//	Warning  anything else (CheckFailed, AwaitingDecision    warn
//	         on an anomaly...)
//	Normal   CheckPassed, CheckInconclusive                 debug (one per check: too chatty for a channel)
//	Normal   anything else (Started, WeightChanged,         info
//	         AwaitingDecision, Promoted...)
//
// A missed progress deadline and a failed pre-rollout hook end in Failed or
// RolledBack, so they are errors too.
func SeverityOf(e v1alpha1.Event) Severity {
	if e.Type == v1alpha1.EventWarning {
		switch {
		case e.Reason == "RollingBack", e.Reason == "RolledBack", e.Reason == "Aborted", e.Reason == "Failed", e.Reason == "PostPromotionFailed",
			strings.HasSuffix(e.Reason, "HookFailed"):
			return SeverityError
		}
		return SeverityWarn
	}
	switch e.Reason {
	case "CheckPassed", "CheckInconclusive":
		return SeverityDebug
	}
	return SeverityInfo
}
