package spec

import (
	"fmt"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/hook"
	"github.com/pipit-dev/pipit/internal/notify"
)

// webhooks checks each hook with the hook package's own rules, and that
// names are unique: history and notifications name hooks by name.
func (v *validator) webhooks(hooks []v1alpha1.WebhookSpec) {
	seen := map[string]bool{}
	for i, w := range hooks {
		p := fmt.Sprintf("spec.webhooks[%d]", i)
		if w.Name != "" && seen[w.Name] {
			v.add(p+".name", "%q names another hook too; names must be unique", clip(w.Name))
		}
		seen[w.Name] = true
		for _, problem := range hook.Validate(w) {
			field := p
			if problem.Field != "" {
				field += "." + problem.Field
			}
			v.add(field, "%s", problem.Reason)
		}
	}
}

// notifications checks each notifier without reading the environment
// variables or files its URL comes from, which may only exist where the
// daemon runs.
func (v *validator) notifications(ns []v1alpha1.NotifierSpec) {
	seen := map[string]bool{}
	for i, n := range ns {
		p := fmt.Sprintf("spec.notifications[%d]", i)
		if n.Name != "" && seen[n.Name] {
			v.add(p+".name", "%q names another notifier too; names must be unique", clip(n.Name))
		}
		seen[n.Name] = true
		if err := notify.ValidateSpec(n); err != nil {
			v.add(p, "%v", err)
		}
	}
}
