// Package notify tells people about rollout events: one Notifier per
// provider (Slack, Microsoft Teams, Discord, a generic JSON webhook), a
// severity for every event, message templates, and a Dispatcher that sends
// in the background so a slow or failing endpoint never holds up a rollout.
package notify

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/spec"
)

// DefaultTimeout bounds one request when the spec gives no timeout.
const DefaultTimeout = 5 * time.Second

// Well-known keys of Message.Fields. Providers show every field; the
// default text uses canary and evidence.
const (
	// FieldCanary is the version being rolled out.
	FieldCanary = "canary"
	// FieldStable is the version serving users outside the canary share.
	FieldStable = "stable"
	// FieldMetric names the metric that decided a rollback.
	FieldMetric = "metric"
	// FieldEvidence is the sentence that justifies the event, such as
	// "request-success-rate 91% < min 99%"; the default text prefers it to
	// the event's own message.
	FieldEvidence = "evidence"
)

// Notifier delivers one message to one destination. Notify makes a single
// attempt; retries and timeouts are the Dispatcher's business.
type Notifier interface {
	Notify(ctx context.Context, m Message) error
}

// Message is what a Notifier sends: one event of one rollout.
type Message struct {
	// Rollout is the rollout's name.
	Rollout string
	// Event is the transition being announced.
	Event v1alpha1.Event
	// Severity is SeverityOf(Event).
	Severity Severity
	// Text is the rendered message for people.
	Text string
	// Fields are facts about the event shown next to the text (see the
	// Field constants).
	Fields map[string]string
}

// fact is one name/value line shown beside the text by the card-style
// providers.
type fact struct{ Name, Value string }

// facts lists what the cards show: the phase, the canary's weight, who
// acted when a person did, then the message's fields sorted by name.
func (m Message) facts() []fact {
	out := []fact{{"phase", string(m.Event.Phase)}, {"weight", m.Event.Weight.String()}}
	if a := m.Event.Actor; a != "" && a != "pipit" {
		out = append(out, fact{"by", a})
	}
	var extra []fact
	for k, v := range m.Fields {
		if v != "" {
			extra = append(extra, fact{k, v})
		}
	}
	slices.SortFunc(extra, func(a, b fact) int { return cmp.Compare(a.Name, b.Name) })
	return append(out, extra...)
}

// providers builds a Notifier of each type from its resolved endpoint.
var providers = map[v1alpha1.NotifierType]func(endpoint) Notifier{
	v1alpha1.NotifierSlack:   func(e endpoint) Notifier { return &Slack{ep: e} },
	v1alpha1.NotifierTeams:   func(e endpoint) Notifier { return &Teams{ep: e} },
	v1alpha1.NotifierDiscord: func(e endpoint) Notifier { return &Discord{ep: e} },
	v1alpha1.NotifierWebhook: func(e endpoint) Notifier { return &Webhook{ep: e} },
}

// New returns the Notifier a spec asks for, with its URL read from the
// spec, the environment or a file. It refuses a spec that does not pass
// spec.ValidateNotifier: an unknown type must not quietly send nothing, or
// send elsewhere.
func New(ns v1alpha1.NotifierSpec) (Notifier, error) {
	if err := spec.ValidateNotifier(ns); err != nil {
		return nil, err
	}
	u, err := resolveURL(ns)
	if err != nil {
		return nil, fmt.Errorf("notifier %s: %w", spec.NotifierName(ns), err)
	}
	return providers[ns.Type](endpoint{url: u, headers: ns.Headers, client: &http.Client{}}), nil
}

// resolveURL reads the URL from wherever the spec keeps it. Errors never
// quote the URL: it holds the webhook's credentials.
func resolveURL(spec v1alpha1.NotifierSpec) (string, error) {
	var u string
	switch {
	case spec.URL != "":
		return spec.URL, nil
	case spec.URLEnv != "":
		v, ok := os.LookupEnv(spec.URLEnv)
		if !ok || strings.TrimSpace(v) == "" {
			return "", fmt.Errorf("environment variable %s is not set", spec.URLEnv)
		}
		u = strings.TrimSpace(v)
		if err := checkURL(u); err != nil {
			return "", fmt.Errorf("url from environment variable %s: %w", spec.URLEnv, err)
		}
	default:
		b, err := os.ReadFile(spec.URLFile)
		if err != nil {
			return "", fmt.Errorf("url file: %w", err)
		}
		u = strings.TrimSpace(string(b))
		if err := checkURL(u); err != nil {
			return "", fmt.Errorf("url from file %s: %w", spec.URLFile, err)
		}
	}
	return u, nil
}

// checkURL checks a URL read at run time by the spec's rule for a
// notifier's URL. Its errors do not quote the URL.
func checkURL(s string) error {
	if reason := spec.CheckSecretURL(s); reason != "" {
		return errors.New(reason)
	}
	return nil
}
