package notify

import "context"

// Teams posts an Adaptive Card to a Microsoft Teams webhook (a Workflows
// "when a webhook request is received" flow): the text colored by severity
// and a fact set.
type Teams struct{ ep endpoint }

type teamsPayload struct {
	Type        string            `json:"type"`
	Attachments []teamsAttachment `json:"attachments"`
}

type teamsAttachment struct {
	ContentType string    `json:"contentType"`
	Content     teamsCard `json:"content"`
}

type teamsCard struct {
	Schema  string           `json:"$schema"`
	Type    string           `json:"type"`
	Version string           `json:"version"`
	Body    []map[string]any `json:"body"`
}

type teamsFact struct {
	Title string `json:"title"`
	Value string `json:"value"`
}

// teamsColors are Adaptive Card text colors per severity.
var teamsColors = map[Severity]string{
	SeverityDebug: "Default",
	SeverityInfo:  "Good",
	SeverityWarn:  "Warning",
	SeverityError: "Attention",
}

// Notify posts one message.
func (t *Teams) Notify(ctx context.Context, m Message) error {
	var facts []teamsFact
	for _, f := range m.facts() {
		facts = append(facts, teamsFact{Title: f.Name, Value: f.Value})
	}
	card := teamsCard{
		Schema: "http://adaptivecards.io/schemas/adaptive-card.json", Type: "AdaptiveCard", Version: "1.4",
		Body: []map[string]any{
			{"type": "TextBlock", "text": m.Text, "wrap": true, "weight": "Bolder", "color": teamsColors[m.Severity]},
			{"type": "FactSet", "facts": facts},
		},
	}
	return t.ep.postJSON(ctx, teamsPayload{
		Type:        "message",
		Attachments: []teamsAttachment{{ContentType: "application/vnd.microsoft.card.adaptive", Content: card}},
	})
}
