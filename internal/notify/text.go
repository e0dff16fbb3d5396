package notify

import (
	"strings"
	"unicode"

	"github.com/pipit-dev/pipit/internal/spec"
)

// headlines say what happened, per event reason. The canary's version,
// when known, follows a headline that ends in "canary".
var headlines = map[string]string{
	"Installed":           "Installed",
	"Started":             "Started canary",
	"CanaryReplaced":      "New canary",
	"CanaryReady":         "Ready for traffic: canary",
	"WeightChanged":       "Shifted traffic to canary",
	"CheckPassed":         "Check passed for canary",
	"CheckInconclusive":   "Check inconclusive for canary",
	"CheckFailed":         "Check failed for canary",
	"PauseEnded":          "Pause ended for canary",
	"AwaitingDecision":    "Waiting for a decision on canary",
	"Approved":            "Approved canary",
	"StepSkipped":         "Skipped a step of canary",
	"Paused":              "Paused canary",
	"Resumed":             "Resumed canary",
	"Promoting":           "Promoting canary",
	"PromotedFull":        "Skipping to promotion of canary",
	"Promoted":            "Promoted canary",
	"ExperimentStarted":   "Experiment started for canary",
	"ExperimentConcluded": "Experiment concluded for canary",
	"RollingBack":         "Rolling back canary",
	"RolledBack":          "Rolled back canary",
	"Aborted":             "Aborted canary",
	"Failed":              "Rollout failed for canary",
	"Retried":             "Retrying canary",
}

// DefaultText is the message sent without a template: the rollout, what
// happened to which canary, and why, such as
// "checkout: Rolled back canary v2 — request-success-rate 91% < min 99%".
// The evidence field, when given, is the why; else the event's message.
func DefaultText(m Message) string {
	var b strings.Builder
	if m.Rollout != "" {
		b.WriteString(m.Rollout + ": ")
	}
	b.WriteString(headline(m.Event.Reason, m.Fields[FieldCanary]))
	detail := m.Fields[FieldEvidence]
	if detail == "" {
		detail = m.Event.Message
	}
	if detail != "" {
		b.WriteString(" — " + detail)
	}
	return b.String()
}

// headline phrases a reason; unknown reasons ("HookFailed") are spelled
// out as words ("Hook failed").
func headline(reason, canary string) string {
	h, ok := headlines[reason]
	if !ok {
		return words(reason)
	}
	if canary != "" && strings.HasSuffix(h, "canary") {
		h += " " + canary
	}
	return h
}

// words turns a CamelCase reason into a sentence start: "PreRolloutHookFailed"
// becomes "Pre rollout hook failed".
func words(reason string) string {
	var b strings.Builder
	for i, r := range reason {
		if i > 0 && unicode.IsUpper(r) {
			b.WriteByte(' ')
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	if b.Len() == 0 {
		return "Event"
	}
	return b.String()
}

// Template renders a user's message text, in the dialect the spec defines
// and validates (see spec.NotifyTemplate).
type Template struct {
	t *spec.NotifyTemplate
}

// ParseTemplate parses a notifier's template for rendering; it fails as
// spec.ParseNotifyTemplate does, which validation already ran.
func ParseTemplate(src string) (*Template, error) {
	t, err := spec.ParseNotifyTemplate(src)
	if err != nil {
		return nil, err
	}
	return &Template{t: t}, nil
}

// Render returns the template's text for m.
func (t *Template) Render(m Message) (string, error) {
	return t.t.Execute(spec.NotifyTemplateData{Rollout: m.Rollout, Event: m.Event, Severity: m.Severity, Fields: m.Fields, Default: DefaultText(m)})
}
