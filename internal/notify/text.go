package notify

import (
	"fmt"
	"strings"
	"text/template"
	"time"
	"unicode"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pipit-dev/pipit/api/v1alpha1"
)

// headlines say what happened, per event reason. The canary's version,
// when known, follows a headline that ends in "canary".
var headlines = map[string]string{
	"Installed":         "Installed",
	"Started":           "Started canary",
	"CanaryReplaced":    "New canary",
	"CanaryReady":       "Ready for traffic: canary",
	"WeightChanged":     "Shifted traffic to canary",
	"CheckPassed":       "Check passed for canary",
	"CheckInconclusive": "Check inconclusive for canary",
	"CheckFailed":       "Check failed for canary",
	"PauseEnded":        "Pause ended for canary",
	"AwaitingDecision":  "Waiting for a decision on canary",
	"Approved":          "Approved canary",
	"StepSkipped":       "Skipped a step of canary",
	"Paused":            "Paused canary",
	"Resumed":           "Resumed canary",
	"Promoting":         "Promoting canary",
	"PromotedFull":      "Skipping to promotion of canary",
	"Promoted":          "Promoted canary",
	"RollingBack":       "Rolling back canary",
	"RolledBack":        "Rolled back canary",
	"Aborted":           "Aborted canary",
	"Failed":            "Rollout failed for canary",
	"Retried":           "Retrying canary",
}

// DefaultText is the message sent without a template: the rollout, what
// happened to which canary, and why, such as
// "checkout: Rolled back canary v2 — request-success-rate 91 < min 99".
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

// Template renders a user's message text.
type Template struct {
	t *template.Template
}

// templateData is what a template sees.
type templateData struct {
	Rollout  string
	Event    v1alpha1.Event
	Severity Severity
	Fields   map[string]string
	// Default is DefaultText, for templates that only add to it (a
	// mention, a link to a dashboard).
	Default string
}

// ParseTemplate parses a Go text/template and tries it on a sample message,
// so that a misspelt field (.Event.Reson) is reported when the spec is
// loaded rather than when a rollback needs announcing. Missing Fields keys
// render as empty text.
func ParseTemplate(src string) (*Template, error) {
	t, err := template.New("notification").Option("missingkey=zero").Parse(src)
	if err != nil {
		return nil, fmt.Errorf("template: %w", err)
	}
	tpl := &Template{t: t}
	if _, err := tpl.Render(sampleMessage()); err != nil {
		return nil, err
	}
	return tpl, nil
}

// Render returns the template's text for m.
func (t *Template) Render(m Message) (string, error) {
	var b strings.Builder
	data := templateData{Rollout: m.Rollout, Event: m.Event, Severity: m.Severity, Fields: m.Fields, Default: DefaultText(m)}
	if err := t.t.Execute(&b, data); err != nil {
		return "", fmt.Errorf("template: %w", err)
	}
	return b.String(), nil
}

// sampleMessage is a typical message to try templates on.
func sampleMessage() Message {
	e := v1alpha1.Event{
		Time: metav1.NewMicroTime(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)), Type: v1alpha1.EventWarning,
		Reason: "RolledBack", Message: "RolledBack: all traffic on stable v1; canary v2: request-success-rate 91 < min 99",
		Phase: v1alpha1.PhaseRolledBack, Weight: 0, Actor: "pipit",
	}
	return Message{Rollout: "checkout", Event: e, Severity: SeverityOf(e), Fields: map[string]string{
		FieldCanary: "v2", FieldStable: "v1", FieldMetric: "request-success-rate", FieldEvidence: "request-success-rate 91 < min 99",
	}}
}
