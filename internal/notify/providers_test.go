package notify

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pipit-dev/pipit/api/v1alpha1"
)

// notifyOnce sends m through a fresh notifier of the given type and
// returns what the endpoint received.
func notifyOnce(t *testing.T, typ v1alpha1.NotifierType, m Message) request {
	t.Helper()
	c := newCapture(t, nil)
	n, err := New(v1alpha1.NotifierSpec{Type: typ, URL: c.url(), Headers: map[string]string{"X-Team": "payments"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Notify(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	reqs := c.requests()
	if len(reqs) != 1 {
		t.Fatalf("endpoint got %d requests", len(reqs))
	}
	r := reqs[0]
	if r.Path != secretPath || r.Header.Get("Content-Type") != "application/json" || r.Header.Get("X-Team") != "payments" {
		t.Fatalf("request: path %s, headers %v", r.Path, r.Header)
	}
	return r
}

// get walks a decoded JSON value: keys for objects, ints for arrays.
func get(t *testing.T, v any, path ...any) any {
	t.Helper()
	for _, p := range path {
		switch k := p.(type) {
		case string:
			o, ok := v.(map[string]any)
			if !ok {
				t.Fatalf("at %v: %T is not an object", p, v)
			}
			v = o[k]
		case int:
			a, ok := v.([]any)
			if !ok || k >= len(a) {
				t.Fatalf("at %v: %v is not an array that long", p, v)
			}
			v = a[k]
		}
	}
	return v
}

// hasPair reports whether a list of objects holds one with both values.
func hasPair(list any, nameKey, name, valueKey, value string) bool {
	items, _ := list.([]any)
	for _, it := range items {
		o, _ := it.(map[string]any)
		if o[nameKey] == name && o[valueKey] == value {
			return true
		}
	}
	return false
}

func TestSlackPayload(t *testing.T) {
	body := decode(t, notifyOnce(t, v1alpha1.NotifierSlack, rolledBack()).Body)
	wantText := "checkout: Rolled back canary v2 — request-success-rate 91% &lt; min 99%"
	if got := get(t, body, "text"); got != wantText {
		t.Errorf("text = %q, want %q", got, wantText)
	}
	att := get(t, body, "attachments", 0)
	if get(t, att, "color") != "danger" || get(t, att, "fallback") != wantText {
		t.Errorf("attachment = %v", att)
	}
	fields := get(t, att, "fields")
	for name, value := range map[string]string{"phase": "RolledBack", "weight": "0%", "canary": "v2", "stable": "v1",
		"evidence": "request-success-rate 91% &lt; min 99%"} {
		if !hasPair(fields, "title", name, "value", value) {
			t.Errorf("no field %s=%s in %v", name, value, fields)
		}
	}
	if get(t, att, "ts") != float64(time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC).Unix()) {
		t.Errorf("ts = %v", get(t, att, "ts"))
	}
}

// Each provider shows the severity as its own color.
func TestColorsBySeverity(t *testing.T) {
	cases := []struct {
		e                     v1alpha1.Event
		slack, teams, discord any
	}{
		{event(v1alpha1.EventNormal, "Started", "go"), "good", "Good", float64(0x2eb67d)},
		{event(v1alpha1.EventWarning, "CheckFailed", "bad"), "warning", "Warning", float64(0xecb22e)},
		{event(v1alpha1.EventWarning, "Aborted", "stop"), "danger", "Attention", float64(0xe01e5a)},
	}
	for _, c := range cases {
		m := Message{Rollout: "web", Event: c.e, Severity: SeverityOf(c.e), Text: "t"}
		if got := get(t, decode(t, notifyOnce(t, v1alpha1.NotifierSlack, m).Body), "attachments", 0, "color"); got != c.slack {
			t.Errorf("%s: slack color %v, want %v", c.e.Reason, got, c.slack)
		}
		if got := get(t, decode(t, notifyOnce(t, v1alpha1.NotifierTeams, m).Body), "attachments", 0, "content", "body", 0, "color"); got != c.teams {
			t.Errorf("%s: teams color %v, want %v", c.e.Reason, got, c.teams)
		}
		if got := get(t, decode(t, notifyOnce(t, v1alpha1.NotifierDiscord, m).Body), "embeds", 0, "color"); got != c.discord {
			t.Errorf("%s: discord color %v, want %v", c.e.Reason, got, c.discord)
		}
	}
}

func TestTeamsPayload(t *testing.T) {
	m := rolledBack()
	body := decode(t, notifyOnce(t, v1alpha1.NotifierTeams, m).Body)
	if get(t, body, "type") != "message" || get(t, body, "attachments", 0, "contentType") != "application/vnd.microsoft.card.adaptive" {
		t.Errorf("envelope = %v", body)
	}
	card := get(t, body, "attachments", 0, "content")
	if get(t, card, "type") != "AdaptiveCard" || get(t, card, "version") != "1.4" {
		t.Errorf("card = %v", card)
	}
	if get(t, card, "body", 0, "type") != "TextBlock" || get(t, card, "body", 0, "text") != m.Text {
		t.Errorf("text block = %v", get(t, card, "body", 0))
	}
	facts := get(t, card, "body", 1, "facts")
	if get(t, card, "body", 1, "type") != "FactSet" || !hasPair(facts, "title", "metric", "value", "request-success-rate") {
		t.Errorf("fact set = %v", get(t, card, "body", 1))
	}
}

func TestDiscordPayload(t *testing.T) {
	m := rolledBack()
	m.Fields["evidence"] = strings.Repeat("x", 2000) // past Discord's 1024 per field
	body := decode(t, notifyOnce(t, v1alpha1.NotifierDiscord, m).Body)
	embed := get(t, body, "embeds", 0)
	if get(t, embed, "description") != m.Text || get(t, embed, "title") != "checkout · RolledBack" ||
		get(t, embed, "timestamp") != "2026-03-04T05:06:07Z" {
		t.Errorf("embed = %v", embed)
	}
	if !hasPair(get(t, embed, "fields"), "name", "canary", "value", "v2") {
		t.Errorf("fields = %v", get(t, embed, "fields"))
	}
	for _, f := range get(t, embed, "fields").([]any) {
		if v := f.(map[string]any)["value"].(string); len([]rune(v)) > discordMaxFieldValue {
			t.Errorf("field %v is %d characters long", f.(map[string]any)["name"], len([]rune(v)))
		}
	}
}

func TestWebhookPayload(t *testing.T) {
	m := rolledBack()
	raw := notifyOnce(t, v1alpha1.NotifierWebhook, m).Body
	var p WebhookPayload
	if err := json.Unmarshal(raw, &p); err != nil {
		t.Fatal(err)
	}
	if p.Rollout != "checkout" || p.Severity != SeverityError || p.Text != m.Text || p.Fields[FieldMetric] != "request-success-rate" {
		t.Errorf("payload = %+v", p)
	}
	if p.Event.Reason != "RolledBack" || p.Event.Phase != v1alpha1.PhaseRolledBack || !p.Event.Time.Equal(&m.Event.Time) {
		t.Errorf("event = %+v", p.Event)
	}
	if !strings.Contains(string(raw), `"severity":"error"`) {
		t.Errorf("severity is not written by name: %s", raw)
	}
}

// A refusal comes back as a StatusError with the provider's reason and
// any Retry-After; no error mentions the URL.
func TestNotifyErrors(t *testing.T) {
	c := newCapture(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Retry-After", "7")
		w.WriteHeader(http.StatusTooManyRequests)
		_, _ = w.Write([]byte("rate_limited\n"))
	})
	n, err := New(v1alpha1.NotifierSpec{Type: "slack", URL: c.url()})
	if err != nil {
		t.Fatal(err)
	}
	err = n.Notify(context.Background(), rolledBack())
	se, ok := errors.AsType[*StatusError](err)
	if !ok || se.Code != 429 || se.RetryAfter != 7*time.Second || se.Body != "rate_limited" {
		t.Fatalf("err = %#v", err)
	}

	c.Close() // now nothing listens: a transport error
	err = n.Notify(context.Background(), rolledBack())
	if err == nil || strings.Contains(err.Error(), "s3cr3t") {
		t.Fatalf("transport error = %v; want one without the URL", err)
	}
	if retry, _ := retryable(err, time.Time{}); !retry {
		t.Errorf("transport error not retryable")
	}
}

func TestRetryable(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	cases := []struct {
		err   error
		retry bool
		after time.Duration
	}{
		{&StatusError{Code: 500}, true, 0},
		{&StatusError{Code: 503, RetryAfter: time.Second}, true, time.Second},
		{&StatusError{Code: 429, RetryAfter: 2 * time.Second}, true, 2 * time.Second},
		{&StatusError{Code: 429, RetryAt: now.Add(30 * time.Second)}, true, 30 * time.Second},
		{&StatusError{Code: 503, RetryAt: now.Add(-time.Hour)}, true, 0},
		{&StatusError{Code: 408}, true, 0},
		{&StatusError{Code: 400}, false, 0},
		{&StatusError{Code: 404}, false, 0},
		{context.DeadlineExceeded, true, 0},
	}
	for _, c := range cases {
		retry, after := retryable(c.err, now)
		if retry != c.retry || after != c.after {
			t.Errorf("retryable(%v) = %v, %v; want %v, %v", c.err, retry, after, c.retry, c.after)
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	type want struct {
		after time.Duration
		at    time.Time
	}
	cases := map[string]want{
		"":                              {},
		"3":                             {after: 3 * time.Second},
		"0.25":                          {after: 250 * time.Millisecond},
		"-1":                            {},
		"NaN":                           {},
		"soon":                          {},
		"Thu, 01 Jan 2026 00:00:30 GMT": {at: time.Date(2026, 1, 1, 0, 0, 30, 0, time.UTC)},
	}
	for h, w := range cases {
		if after, at := parseRetryAfter(h); after != w.after || !at.Equal(w.at) {
			t.Errorf("parseRetryAfter(%q) = %v, %v; want %v, %v", h, after, at, w.after, w.at)
		}
	}
}
