package spec

import (
	"fmt"
	"slices"

	"github.com/pipit-dev/pipit/api/v1alpha1"
)

// NotifierTypes lists the notifier types a spec may name; the notify
// family has a provider for each.
var NotifierTypes = []v1alpha1.NotifierType{
	v1alpha1.NotifierSlack, v1alpha1.NotifierTeams, v1alpha1.NotifierDiscord, v1alpha1.NotifierWebhook,
}

// notifications checks each notifier, and that names are unique.
func (v *validator) notifications(ns []v1alpha1.NotifierSpec) {
	seen := map[string]bool{}
	for i, n := range ns {
		p := fmt.Sprintf("spec.notifications[%d]", i)
		if n.Name != "" && seen[n.Name] {
			v.add(p+".name", "%q names another notifier too; names must be unique", clip(n.Name))
		}
		seen[n.Name] = true
		if err := ValidateNotifier(n); err != nil {
			v.add(p, "%v", err)
		}
	}
}

// ValidateNotifier checks what can be checked without the daemon's
// environment and files: the type, that exactly one URL source is given,
// the URL when it is written in the spec, the severity, the timeout and
// the template. `pipit validate` runs it on a machine that may not hold
// the secrets; the notify family runs it again before building a notifier.
func ValidateNotifier(n v1alpha1.NotifierSpec) error {
	name := NotifierName(n)
	if !slices.Contains(NotifierTypes, n.Type) {
		return fmt.Errorf("notifier %s: unknown type %q (want slack, teams, discord or webhook)", name, n.Type)
	}
	sources := 0
	for _, s := range []string{n.URL, n.URLEnv, n.URLFile} {
		if s != "" {
			sources++
		}
	}
	if sources != 1 {
		return fmt.Errorf("notifier %s: set exactly one of url, urlEnv and urlFile", name)
	}
	if n.URL != "" {
		if reason := checkURL(n.URL, false); reason != "" {
			return fmt.Errorf("notifier %s: url: %s", name, reason)
		}
	}
	if _, err := ParseSeverity(n.Severity); err != nil {
		return fmt.Errorf("notifier %s: %w", name, err)
	}
	if n.Timeout != nil && n.Timeout.Duration <= 0 {
		return fmt.Errorf("notifier %s: timeout must be positive", name)
	}
	if n.Template != "" {
		if _, err := ParseNotifyTemplate(n.Template); err != nil {
			return fmt.Errorf("notifier %s: %w", name, err)
		}
	}
	return nil
}

// NotifierName is how errors and logs name a notifier: its name, else its
// type.
func NotifierName(n v1alpha1.NotifierSpec) string {
	if n.Name != "" {
		return n.Name
	}
	return string(n.Type)
}
