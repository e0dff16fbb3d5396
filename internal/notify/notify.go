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
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/pipit-dev/pipit/api/v1alpha1"
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
	// "request-success-rate 91 < min 99"; the default text prefers it to
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
// spec, the environment or a file. An unknown type is an error: a typo must
// not quietly send nothing, or send elsewhere.
func New(spec v1alpha1.NotifierSpec) (Notifier, error) {
	if err := ValidateSpec(spec); err != nil {
		return nil, err
	}
	u, err := resolveURL(spec)
	if err != nil {
		return nil, fmt.Errorf("notifier %s: %w", nameOf(spec), err)
	}
	return providers[spec.Type](endpoint{url: u, headers: spec.Headers, client: &http.Client{}}), nil
}

// ValidateSpec checks what can be checked without the daemon's environment
// and files: the type, that exactly one URL source is given, the severity,
// the timeout and the template. `pipit validate` can run it on a machine
// that does not hold the secrets.
func ValidateSpec(spec v1alpha1.NotifierSpec) error {
	name := nameOf(spec)
	if _, ok := providers[spec.Type]; !ok {
		return fmt.Errorf("notifier %s: unknown type %q (want slack, teams, discord or webhook)", name, spec.Type)
	}
	n := 0
	for _, s := range []string{spec.URL, spec.URLEnv, spec.URLFile} {
		if s != "" {
			n++
		}
	}
	if n != 1 {
		return fmt.Errorf("notifier %s: set exactly one of url, urlEnv and urlFile", name)
	}
	if spec.URL != "" {
		if err := checkURL(spec.URL); err != nil {
			return fmt.Errorf("notifier %s: url: %w", name, err)
		}
	}
	if _, err := ParseSeverity(spec.Severity); err != nil {
		return fmt.Errorf("notifier %s: %w", name, err)
	}
	if spec.Timeout != nil && spec.Timeout.Duration <= 0 {
		return fmt.Errorf("notifier %s: timeout must be positive", name)
	}
	if spec.Template != "" {
		if _, err := ParseTemplate(spec.Template); err != nil {
			return fmt.Errorf("notifier %s: %w", name, err)
		}
	}
	return nil
}

// nameOf is the notifier's name in logs: its name, else its type.
func nameOf(spec v1alpha1.NotifierSpec) string {
	if spec.Name != "" {
		return spec.Name
	}
	return string(spec.Type)
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

// checkURL accepts absolute http and https URLs. Its errors do not quote
// the URL.
func checkURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return errors.New("not a valid URL")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return errors.New("must be an http or https URL")
	}
	if u.Host == "" {
		return errors.New("has no host")
	}
	return nil
}
