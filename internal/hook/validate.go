package hook

import (
	"fmt"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/spec"
)

// validate is Run's guard: a hook runs only if it follows the spec's rules
// for hooks, which `pipit validate` and the daemon applied already.
func validate(s v1alpha1.WebhookSpec) error {
	if errs := spec.ValidateWebhook(s); len(errs) > 0 {
		return fmt.Errorf("hook %q: %w", s.Name, errs)
	}
	return nil
}
