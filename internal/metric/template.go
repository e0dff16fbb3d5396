package metric

import (
	"fmt"
	"strings"
	"text/template"
	"time"
)

// templateData is what query, URL and body templates see. Its fields are
// the documented template fields; anything else is an error when the
// template runs.
type templateData struct {
	Rollout   string
	Namespace string
	Version   string
	// Variant is Version under the name a flag rollout gives it: the
	// flag's variant measured, for queries of an application's own
	// metrics labelled by variant.
	Variant string
	Role    string
	// Interval is the window as a Prometheus duration, such as "60s".
	Interval string
	// Elapsed is the time since the experiment started, or else the
	// rollout, as a Prometheus duration: the window of a goal's counts.
	Elapsed string
	Vars    map[string]string
	// Args are the metric's arguments, such as a template's service.
	Args map[string]string
}

// parseTemplate parses a provider template. A missing variable is an error
// when it runs rather than an empty string, so a typo cannot turn a query
// into one that silently matches nothing.
func parseTemplate(name, text string) (*template.Template, error) {
	t, err := template.New(name).Option("missingkey=error").Parse(text)
	if err != nil {
		return nil, fmt.Errorf("parsing %s template: %w", name, err)
	}
	return t, nil
}

// render runs a template for one query.
func render(t *template.Template, q Query) (string, error) {
	vars, args := q.Vars, q.Args
	if vars == nil {
		vars = map[string]string{}
	}
	if args == nil {
		args = map[string]string{}
	}
	data := templateData{
		Rollout:   q.Rollout,
		Namespace: q.Namespace,
		Version:   q.Version,
		Variant:   q.Version,
		Role:      q.Role,
		Interval:  promDuration(q.Interval),
		Elapsed:   promDuration(q.Elapsed),
		Vars:      vars,
		Args:      args,
	}
	var b strings.Builder
	if err := t.Execute(&b, data); err != nil {
		return "", fmt.Errorf("rendering %s template: %w", t.Name(), err)
	}
	return b.String(), nil
}

// promDuration formats d as PromQL reads it: whole seconds as "60s" (not
// Go's "1m0s", which PromQL rejects), otherwise milliseconds, such as
// "1500ms".
func promDuration(d time.Duration) string {
	if d%time.Second == 0 {
		return fmt.Sprintf("%ds", d/time.Second)
	}
	return fmt.Sprintf("%dms", d/time.Millisecond)
}
