package spec

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/pipit-dev/pipit/api/v1alpha1"
)

// NotifierTypes lists the notifier types a spec may name; the notify
// family has a provider for each.
var NotifierTypes = []v1alpha1.NotifierType{
	v1alpha1.NotifierSlack, v1alpha1.NotifierTeams, v1alpha1.NotifierDiscord, v1alpha1.NotifierWebhook,
}

// notifications checks each notifier, and that names are unique; each
// problem is reported at its own field.
func (v *validator) notifications(ns []v1alpha1.NotifierSpec) {
	seen := map[string]bool{}
	for i, n := range ns {
		p := fmt.Sprintf("spec.notifications[%d]", i)
		if n.Name != "" && seen[n.Name] {
			v.add(p+".name", "%q names another notifier too; names must be unique", clip(n.Name))
		}
		seen[n.Name] = true
		for _, pr := range NotifierProblems(n) {
			v.add(p+pr.Field, "%s", pr.Reason)
		}
	}
}

// NotifierProblem is one thing wrong with a notifier: the field, as a
// suffix of the notifier's own (".url"; empty for the notifier as a
// whole), and why.
type NotifierProblem struct {
	Field, Reason string
}

// NotifierProblems checks what can be checked without the daemon's
// environment and files: the type, that exactly one URL source is given,
// the URL when it is written in the spec, the severity, the timeout and
// the template. `pipit validate` runs it on a machine that may not hold
// the secrets.
func NotifierProblems(n v1alpha1.NotifierSpec) []NotifierProblem {
	var out []NotifierProblem
	add := func(field, reason string) { out = append(out, NotifierProblem{field, reason}) }
	if !slices.Contains(NotifierTypes, n.Type) {
		add(".type", fmt.Sprintf("unknown type %q (want slack, teams, discord or webhook)", n.Type))
	}
	sources := 0
	for _, s := range []string{n.URL, n.URLEnv, n.URLFile} {
		if s != "" {
			sources++
		}
	}
	if sources != 1 {
		add("", "set exactly one of url, urlEnv and urlFile")
	}
	if n.URL != "" {
		if reason := checkURL(n.URL, false); reason != "" {
			add(".url", reason)
		}
	}
	if _, err := ParseSeverity(n.Severity); err != nil {
		add(".severity", err.Error())
	}
	if n.Timeout != nil && n.Timeout.Duration <= 0 {
		add(".timeout", "must be positive")
	}
	if n.Template != "" {
		if _, err := ParseNotifyTemplate(n.Template); err != nil {
			add(".template", strings.TrimPrefix(err.Error(), "template: "))
		}
	}
	return out
}

// ValidateNotifier is NotifierProblems as one error naming the notifier,
// for the notify family, which checks again before building a notifier.
func ValidateNotifier(n v1alpha1.NotifierSpec) error {
	var errs []error
	for _, pr := range NotifierProblems(n) {
		field := strings.TrimPrefix(pr.Field, ".")
		if field != "" {
			field += ": "
		}
		errs = append(errs, fmt.Errorf("notifier %s: %s%s", NotifierName(n), field, pr.Reason))
	}
	return errors.Join(errs...)
}

// NotifierName is how errors and logs name a notifier: its name, else its
// type.
func NotifierName(n v1alpha1.NotifierSpec) string {
	if n.Name != "" {
		return n.Name
	}
	return string(n.Type)
}
