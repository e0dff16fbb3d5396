package hook

import (
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/loadgen"
)

// maxRetries bounds WebhookSpec.Retries: with the backoff cap, more retries
// would hold a polled gate for minutes on one dead receiver.
const maxRetries = 10

// Types lists every hook type, in the order of a rollout's life.
var Types = []v1alpha1.HookType{
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

// Problem is one thing wrong with a WebhookSpec. Field is the path below the
// hook, such as "loadTest.duration", so that a caller can prefix where the
// hook sits in its file; it is empty for a problem of the hook as a whole.
type Problem struct {
	Field  string
	Reason string
}

// Error renders the problem as "field: reason", or the reason alone when it
// is about the hook as a whole (an empty Field).
func (p Problem) Error() string {
	if p.Field == "" {
		return p.Reason
	}
	return p.Field + ": " + p.Reason
}

// Validate returns every problem with a hook spec, nil when it can run. It
// does not read the secret, which may legitimately appear only later.
func Validate(s v1alpha1.WebhookSpec) []Problem {
	var ps []Problem
	add := func(field, format string, args ...any) {
		ps = append(ps, Problem{Field: field, Reason: fmt.Sprintf(format, args...)})
	}
	if strings.TrimSpace(s.Name) == "" {
		add("name", "is required")
	}
	if !slices.Contains(Types, s.Type) {
		add("type", "must be one of %s, not %q", typeList(), s.Type)
	}

	kinds := 0
	if s.URL != "" {
		kinds++
		if msg := checkURL(s.URL); msg != "" {
			add("url", "%s", msg)
		}
	}
	if len(s.Command) > 0 {
		kinds++
		if s.Command[0] == "" {
			add("command[0]", "must name the program to run")
		}
	}
	if s.LoadTest != nil {
		kinds++
		for _, p := range validateLoadTest(*s.LoadTest) {
			add(strings.TrimSuffix("loadTest."+p.Field, "."), "%s", p.Reason)
		}
		if s.Type != v1alpha1.HookRollout && s.Type != v1alpha1.HookPreRollout {
			add("loadTest", "only runs as a rollout or pre-rollout hook, not %s", s.Type)
		}
	}
	if kinds != 1 {
		add("", "exactly one of url, command and loadTest must be set, not %d", kinds)
	}

	if len(s.Env) > 0 && len(s.Command) == 0 {
		add("env", "only applies to a command hook")
	}
	for _, k := range slices.Sorted(maps.Keys(s.Env)) {
		if k == "" || strings.ContainsAny(k, "=\x00") || strings.Contains(s.Env[k], "\x00") {
			add("env", "%q is not a valid environment variable", k)
		}
	}
	if s.SecretEnv != "" && s.SecretFile != "" {
		add("secretEnv", "cannot be set together with secretFile")
	}
	if (s.SecretEnv != "" || s.SecretFile != "") && s.URL == "" {
		add("secretEnv", "signing only applies to an HTTP hook (url)")
	}
	if s.Timeout != nil && s.Timeout.Duration <= 0 {
		add("timeout", "must be positive, not %s", s.Timeout.Duration)
	}
	if s.Retries != nil && (*s.Retries < 0 || *s.Retries > maxRetries) {
		add("retries", "must be from 0 to %d, not %d", maxRetries, *s.Retries)
	}
	return ps
}

// validateLoadTest reuses the load generator's own checks, so that what
// validates is what runs.
func validateLoadTest(lt v1alpha1.LoadTestHook) []Problem {
	if lt.Duration == nil {
		return []Problem{{Field: "duration", Reason: "is required"}}
	}
	if err := loadConfig(lt, DefaultTimeout).Validate(); err != nil {
		return []Problem{{Field: "", Reason: strings.TrimPrefix(err.Error(), "loadgen: ")}}
	}
	return nil
}

// loadConfig turns a load-test hook into the load generator's config.
func loadConfig(lt v1alpha1.LoadTestHook, timeout time.Duration) loadgen.Config {
	var d time.Duration
	if lt.Duration != nil {
		d = lt.Duration.Duration
	}
	var h http.Header
	if len(lt.Headers) > 0 {
		h = make(http.Header, len(lt.Headers))
		for k, v := range lt.Headers {
			h.Set(k, v)
		}
	}
	return loadgen.Config{
		URL:      lt.URL,
		Method:   lt.Method,
		Rate:     int(lt.Rate),
		Duration: d,
		Headers:  h,
		Timeout:  timeout,
	}
}

// checkURL explains what is wrong with a hook URL, or returns "". It never
// echoes the URL, which may hold a token.
func checkURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return "is not a valid URL: " + err.Error()
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "must be an absolute http or https URL"
	}
	if u.Host == "" {
		return "has no host"
	}
	return ""
}

func typeList() string {
	names := make([]string, len(Types))
	for i, t := range Types {
		names[i] = string(t)
	}
	return strings.Join(names, ", ")
}

func problemErrors(ps []Problem) []error {
	errs := make([]error, len(ps))
	for i, p := range ps {
		errs[i] = p
	}
	return errs
}
