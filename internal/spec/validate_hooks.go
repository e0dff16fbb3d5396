package spec

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/pipit-dev/pipit/api/v1alpha1"
)

// maxHookRetries bounds WebhookSpec.Retries: with the hook family's backoff
// cap, more retries would hold a polled gate for minutes on one dead
// receiver.
const maxHookRetries = 10

// hookTypes lists every hook type, in the order of a rollout's life.
var hookTypes = []v1alpha1.HookType{
	v1alpha1.HookConfirmRollout,
	v1alpha1.HookPreRollout,
	v1alpha1.HookRollout,
	v1alpha1.HookConfirmTrafficIncrease,
	v1alpha1.HookConfirmPromotion,
	v1alpha1.HookPostRollout,
	v1alpha1.HookRollback,
	v1alpha1.HookEvent,
	v1alpha1.HookContract,
}

// ValidateWebhook returns every problem with one hook, nil when it can
// run. Each problem's Field is the path below the hook, such as
// "loadTest.duration", or empty for the hook as a whole, so that a caller
// can say where the hook sits. It does not read the secret, which may
// legitimately appear only later. The hook family checks each hook with it
// again before running it.
func ValidateWebhook(s v1alpha1.WebhookSpec) Errors {
	var v validator
	v.webhook("", s)
	return v.errs
}

// webhooks checks each hook, and that names are unique: history and
// notifications name hooks by name.
func (v *validator) webhooks(hooks []v1alpha1.WebhookSpec) {
	seen := map[string]bool{}
	for i, w := range hooks {
		p := fmt.Sprintf("spec.webhooks[%d]", i)
		if w.Name != "" && seen[w.Name] {
			v.add(p+".name", "%q names another hook too; names must be unique", clip(w.Name))
		}
		seen[w.Name] = true
		v.webhook(p, w)
	}
}

// webhook checks one hook found at path p ("" when it stands alone).
func (v *validator) webhook(p string, s v1alpha1.WebhookSpec) {
	if strings.TrimSpace(s.Name) == "" {
		v.add(below(p, "name"), "is required")
	}
	if !slices.Contains(hookTypes, s.Type) {
		v.add(below(p, "type"), "must be one of %s, not %q", hookTypeList(), s.Type)
	}
	kinds := 0
	if s.URL != "" {
		kinds++
		if reason := checkURL(s.URL, false); reason != "" {
			v.add(below(p, "url"), "%s", reason)
		}
	}
	if len(s.Command) > 0 {
		kinds++
		if s.Command[0] == "" {
			v.add(below(p, "command[0]"), "must name the program to run")
		}
	}
	if s.LoadTest != nil {
		kinds++
		v.loadTest(below(p, "loadTest"), *s.LoadTest)
		if s.Type != v1alpha1.HookRollout && s.Type != v1alpha1.HookPreRollout {
			v.add(below(p, "loadTest"), "only runs as a rollout or pre-rollout hook, not %s", s.Type)
		}
	}
	if kinds != 1 {
		v.add(p, "exactly one of url, command and loadTest must be set, not %d", kinds)
	}
	v.webhookOptions(p, s)
}

// webhookOptions checks the settings that apply to some kinds of hook only,
// and the bounds of the ones that apply to all.
func (v *validator) webhookOptions(p string, s v1alpha1.WebhookSpec) {
	if len(s.Env) > 0 && len(s.Command) == 0 {
		v.add(below(p, "env"), "only applies to a command hook")
	}
	for _, k := range slices.Sorted(maps.Keys(s.Env)) {
		if k == "" || strings.ContainsAny(k, "=\x00") || strings.Contains(s.Env[k], "\x00") {
			v.add(below(p, "env"), "%q is not a valid environment variable", k)
		}
	}
	if s.SecretEnv != "" && s.SecretFile != "" {
		v.add(below(p, "secretEnv"), "cannot be set together with secretFile")
	}
	if (s.SecretEnv != "" || s.SecretFile != "") && s.URL == "" {
		v.add(below(p, "secretEnv"), "signing only applies to an HTTP hook (url)")
	}
	if s.Timeout != nil && s.Timeout.Duration <= 0 {
		v.add(below(p, "timeout"), "must be positive, not %s", s.Timeout.Duration)
	}
	if s.Retries != nil && (*s.Retries < 0 || *s.Retries > maxHookRetries) {
		v.add(below(p, "retries"), "must be from 0 to %d, not %d", maxHookRetries, *s.Retries)
	}
}

// loadTest checks a load-test hook by the load generator's own rules, so
// that what validates is what runs.
func (v *validator) loadTest(p string, lt v1alpha1.LoadTestHook) {
	if lt.Duration == nil {
		v.add(below(p, "duration"), "is required")
		return
	}
	headers := make(map[string][]string, len(lt.Headers))
	for name, value := range lt.Headers {
		headers[name] = []string{value}
	}
	settings := LoadSettings{URL: lt.URL, Method: lt.Method, Rate: int(lt.Rate), Duration: lt.Duration.Duration, Headers: headers}
	if err := settings.Validate(); err != nil {
		v.add(p, "%v", err)
	}
}

// below is the path of field inside the object at path p; either may be
// empty.
func below(p, field string) string {
	switch {
	case p == "":
		return field
	case field == "":
		return p
	}
	return p + "." + field
}

func hookTypeList() string {
	names := make([]string, len(hookTypes))
	for i, t := range hookTypes {
		names[i] = string(t)
	}
	return strings.Join(names, ", ")
}
