package notify

import (
	"context"
	"time"
)

// Discord posts an embed to a Discord channel webhook: the text as its
// description, colored by severity, with the event's facts as fields.
type Discord struct{ ep endpoint }

type discordPayload struct {
	Username string         `json:"username"`
	Embeds   []discordEmbed `json:"embeds"`
}

type discordEmbed struct {
	Title       string         `json:"title"`
	Description string         `json:"description"`
	Color       int            `json:"color"`
	Fields      []discordField `json:"fields"`
	Timestamp   string         `json:"timestamp"`
}

type discordField struct {
	Name   string `json:"name"`
	Value  string `json:"value"`
	Inline bool   `json:"inline"`
}

// discordColors are embed colors (RGB) per severity.
var discordColors = map[Severity]int{
	SeverityDebug: 0x9e9e9e,
	SeverityInfo:  0x2eb67d,
	SeverityWarn:  0xecb22e,
	SeverityError: 0xe01e5a,
}

// Discord's limits on embed text, in characters; longer text makes the
// whole message rejected with 400.
const (
	discordMaxTitle       = 256
	discordMaxDescription = 4096
	discordMaxFieldValue  = 1024
	discordMaxFields      = 25
)

// Notify posts one message.
func (d *Discord) Notify(ctx context.Context, m Message) error {
	var fields []discordField
	for _, f := range m.facts() {
		if len(fields) == discordMaxFields {
			break
		}
		fields = append(fields, discordField{Name: f.Name, Value: truncate(f.Value, discordMaxFieldValue), Inline: len(f.Value) <= 40})
	}
	return d.ep.postJSON(ctx, discordPayload{
		Username: "pipit",
		Embeds: []discordEmbed{{
			Title: truncate(m.Rollout+" · "+m.Event.Reason, discordMaxTitle), Description: truncate(m.Text, discordMaxDescription),
			Color: discordColors[m.Severity], Fields: fields, Timestamp: m.Event.Time.UTC().Format(time.RFC3339),
		}},
	})
}

// truncate cuts s to at most n characters, marking the cut with an
// ellipsis.
func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
