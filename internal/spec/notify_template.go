package spec

import (
	"fmt"
	"strings"
	"text/template"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pipit-dev/pipit/api/v1alpha1"
)

// NotifyTemplate is a notifier's message template: a Go text/template over
// NotifyTemplateData, in which a missing Fields key renders as empty text.
// The spec owns the dialect so that `pipit validate` can try a template
// exactly as the notify family will render it.
type NotifyTemplate struct {
	t *template.Template
}

// NotifyTemplateData is what a notifier's template sees.
type NotifyTemplateData struct {
	// Rollout is the rollout's name.
	Rollout string
	// Event is the transition being announced.
	Event v1alpha1.Event
	// Severity is how much the event matters.
	Severity Severity
	// Fields are facts about the event, such as canary, stable, metric and
	// evidence.
	Fields map[string]string
	// Default is the text sent without a template, for templates that only
	// add to it (a mention, a link to a dashboard).
	Default string
}

// ParseNotifyTemplate parses a template and tries it on
// SampleNotification, so that a misspelt field (.Event.Reson) is reported
// when the spec is validated rather than when a rollback needs announcing.
func ParseNotifyTemplate(src string) (*NotifyTemplate, error) {
	t, err := template.New("notification").Option("missingkey=zero").Parse(src)
	if err != nil {
		return nil, fmt.Errorf("template: %w", err)
	}
	nt := &NotifyTemplate{t: t}
	if _, err := nt.Execute(SampleNotification()); err != nil {
		return nil, err
	}
	return nt, nil
}

// Execute returns the template's text for d.
func (t *NotifyTemplate) Execute(d NotifyTemplateData) (string, error) {
	var b strings.Builder
	if err := t.t.Execute(&b, d); err != nil {
		return "", fmt.Errorf("template: %w", err)
	}
	return b.String(), nil
}

// SampleNotification is the typical message templates are tried on: a
// rollback, with the severity and default text the notify family gives it
// (its tests hold the two in step).
func SampleNotification() NotifyTemplateData {
	e := v1alpha1.Event{
		Time: metav1.NewMicroTime(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)), Type: v1alpha1.EventWarning,
		Reason: "RolledBack", Message: "RolledBack: all traffic on stable v1; canary v2: request-success-rate 91% < min 99%",
		Phase: v1alpha1.PhaseRolledBack, Weight: 0, Actor: "pipit",
	}
	return NotifyTemplateData{
		Rollout: "checkout", Event: e, Severity: SeverityError,
		Fields: map[string]string{
			"canary": "v2", "stable": "v1", "metric": "request-success-rate", "evidence": "request-success-rate 91% < min 99%",
		},
		Default: "checkout: Rolled back canary v2 — request-success-rate 91% < min 99%",
	}
}
