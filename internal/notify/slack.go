package notify

import (
	"context"
	"strings"
)

// Slack posts to a Slack incoming webhook: the text (what phones show in
// the notification), then an attachment colored by severity with the
// event's facts.
type Slack struct{ ep endpoint }

type slackPayload struct {
	Text        string            `json:"text"`
	Attachments []slackAttachment `json:"attachments"`
}

type slackAttachment struct {
	Color    string       `json:"color"`
	Fallback string       `json:"fallback"`
	Fields   []slackField `json:"fields"`
	Footer   string       `json:"footer"`
	Ts       int64        `json:"ts"`
}

type slackField struct {
	Title string `json:"title"`
	Value string `json:"value"`
	Short bool   `json:"short"`
}

// slackColors are Slack's attachment colors per severity.
var slackColors = map[Severity]string{
	SeverityDebug: "#9e9e9e",
	SeverityInfo:  "good",
	SeverityWarn:  "warning",
	SeverityError: "danger",
}

// slackEscaper escapes the three characters Slack reads as markup, so
// "91% < min 99%" is shown as written.
var slackEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")

// Notify posts one message.
func (s *Slack) Notify(ctx context.Context, m Message) error {
	text := slackEscaper.Replace(m.Text)
	var fields []slackField
	for _, f := range m.facts() {
		fields = append(fields, slackField{Title: f.Name, Value: slackEscaper.Replace(f.Value), Short: len(f.Value) <= 40})
	}
	return s.ep.postJSON(ctx, slackPayload{
		Text: text,
		Attachments: []slackAttachment{{
			Color: slackColors[m.Severity], Fallback: text, Fields: fields,
			Footer: "pipit · " + m.Event.Reason, Ts: m.Event.Time.Unix(),
		}},
	})
}
