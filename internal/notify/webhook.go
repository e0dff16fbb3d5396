package notify

import (
	"context"

	"github.com/pipit-dev/pipit/api/v1alpha1"
)

// Webhook posts the whole message as JSON to any endpoint, for scripts,
// chat bridges and incident tools pipit has no provider for.
type Webhook struct{ ep endpoint }

// WebhookPayload is the body the generic webhook receives.
type WebhookPayload struct {
	// Rollout is the rollout's name.
	Rollout string `json:"rollout"`
	// Severity is debug, info, warn or error.
	Severity Severity `json:"severity"`
	// Text is the rendered message.
	Text string `json:"text"`
	// Event is the transition, as `pipit history` shows it.
	Event v1alpha1.Event `json:"event"`
	// Fields are facts about the event (canary, stable, metric, evidence…).
	Fields map[string]string `json:"fields,omitempty"`
}

// Notify posts one message.
func (w *Webhook) Notify(ctx context.Context, m Message) error {
	return w.ep.postJSON(ctx, WebhookPayload{Rollout: m.Rollout, Severity: m.Severity, Text: m.Text, Event: m.Event, Fields: m.Fields})
}
