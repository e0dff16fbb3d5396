// Package hook runs a rollout's webhooks: HTTP endpoints, local commands and
// the built-in load test, with Flagger's semantics (see v1alpha1.HookType).
//
// Run performs one hook run and reports its answer; when a hook runs and what
// its answer means for the rollout is the engine's business. Run never logs
// or returns more of an HTTP hook's URL than its host, nor its secret: both
// may carry credentials.
package hook

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/rollout"
)

// Defaults of the optional WebhookSpec fields.
const (
	DefaultTimeout = 10 * time.Second
	DefaultRetries = 2
)

// MaxMessage bounds Result.Message, in bytes: a hook's answer ends up in
// status, history and notifications, which want a sentence, not a page.
const MaxMessage = 1024

// Backoff between attempts: the n-th retry waits about baseBackoff·2ⁿ⁻¹,
// capped at maxBackoff, with jitter so that many rollouts calling one
// receiver do not retry in lockstep.
const (
	baseBackoff = 200 * time.Millisecond
	maxBackoff  = 5 * time.Second
)

// Payload is what every hook receives: as the JSON body of an HTTP POST, or
// on a command's standard input.
type Payload struct {
	// Name and Namespace of the rollout.
	Name      string `json:"name"`
	Namespace string `json:"namespace,omitempty"`
	// Phase of the rollout when the hook runs.
	Phase string `json:"phase"`
	// Type of the hook being run; Run fills it in from the spec.
	Type v1alpha1.HookType `json:"type"`
	// Version is the canary's version label; StableVersion the stable's.
	Version       string `json:"version,omitempty"`
	StableVersion string `json:"stableVersion,omitempty"`
	// Step is the index of the current step.
	Step int32 `json:"step"`
	// Weight is the canary's share of traffic in percent (2.5 is 2.5%).
	Weight float64 `json:"weight"`
	// Metadata is the hook's metadata from the spec, plus any entries the
	// caller set, which win on a clash.
	Metadata map[string]string `json:"metadata,omitempty"`
	// Event is the event being announced, for event hooks.
	Event *v1alpha1.Event `json:"event,omitempty"`
}

// Result is the outcome of one hook run.
type Result struct {
	// OK is the hook's yes: a 2xx answer, exit status 0, or a load test
	// with at least one answered request. What a yes means depends on the
	// hook type: for a rollback hook it asks for a rollback.
	OK bool
	// Message is a short text from the hook (the response body, a
	// command's standard error or else its output, a load test's summary),
	// at most MaxMessage bytes.
	Message string
	// Attempts is how many attempts were made; 0 when the hook could not
	// be started at all (an invalid spec, an unreadable secret).
	Attempts int
	// Err says why the hook gave no answer: an invalid spec, a transport
	// error, a timeout, a 5xx after the last retry, a command that could not
	// start or was killed. It is nil when the hook answered, yes or no, so a
	// receiver's deliberate "no" (a 4xx, a non-zero exit) can be told from
	// an outage.
	Err error
}

// attempt is what one try of an HTTP or command hook observed.
type attempt struct {
	ok      bool
	message string
	// err is set when the attempt got no answer; retry says whether
	// another attempt may get one.
	err   error
	retry bool
}

// Runner runs hooks with what its runtime hands it. Its zero value runs
// them on the wall clock and logs nothing.
type Runner struct {
	// Clock times the pauses between attempts and the timestamps that
	// sign HTTP hooks; nil is the wall clock.
	Clock rollout.Clock
	// Log receives the attempts that got no answer; nil discards them.
	Log *slog.Logger
}

// Run runs one hook once, retrying attempts that got no answer as the
// spec allows, and returns its answer. It returns when the hook answered,
// the retries are spent, or ctx is done, whichever comes first; each
// attempt is also bounded by the spec's timeout.
func (r Runner) Run(ctx context.Context, spec v1alpha1.WebhookSpec, p Payload) Result {
	if err := validate(spec); err != nil {
		return Result{Err: err}
	}
	p.Type = spec.Type
	p.Metadata = mergeMetadata(spec.Metadata, p.Metadata)
	timeout := DefaultTimeout
	if spec.Timeout != nil {
		timeout = spec.Timeout.Duration
	}

	var res Result
	switch {
	case spec.LoadTest != nil:
		res = runLoadTest(ctx, *spec.LoadTest, timeout)
	case len(spec.Command) > 0:
		res = r.retry(ctx, spec, func(ctx context.Context) attempt {
			return runCommand(ctx, spec, p, timeout)
		})
	default:
		send, err := newSender(spec, p, rollout.ClockOrSystem(r.Clock))
		if err != nil {
			return Result{Err: fmt.Errorf("hook %q: %w", spec.Name, err)}
		}
		res = r.retry(ctx, spec, func(ctx context.Context) attempt {
			return send.post(ctx, timeout)
		})
	}
	if res.Err != nil {
		res.Err = fmt.Errorf("hook %q: %w", spec.Name, res.Err)
	}
	return res
}

// retry makes attempts until one gets an answer, one fails for good, the
// retries are spent or ctx is done.
func (r Runner) retry(ctx context.Context, spec v1alpha1.WebhookSpec, try func(context.Context) attempt) Result {
	retries := DefaultRetries
	if spec.Retries != nil {
		retries = int(*spec.Retries)
	}
	var res Result
	for {
		a := try(ctx)
		res.Attempts++
		res.OK, res.Message, res.Err = a.ok, bound(a.message), a.err
		if a.err == nil || !a.retry || res.Attempts > retries {
			return res
		}
		r.logger().DebugContext(ctx, "hook attempt got no answer", "hook", spec.Name, "type", spec.Type,
			"attempt", res.Attempts, "err", a.err)
		if rollout.Sleep(ctx, rollout.ClockOrSystem(r.Clock), backoff(res.Attempts)) != nil {
			res.Err = fmt.Errorf("%w (gave up after %d attempts: %w)", a.err, res.Attempts, context.Cause(ctx))
			return res
		}
	}
}

func (r Runner) logger() *slog.Logger {
	if r.Log != nil {
		return r.Log
	}
	return discard
}

// discard is the logger of a Runner given none.
var discard = slog.New(slog.DiscardHandler)

// backoff is the wait before retry n (1-based): exponential, capped, and
// drawn from the upper half of the interval.
func backoff(n int) time.Duration {
	d := maxBackoff
	if n < 8 { // beyond, the shift would pass the cap anyway
		d = min(baseBackoff<<(n-1), maxBackoff)
	}
	return d/2 + rand.N(d/2)
}

// mergeMetadata returns the spec's metadata overlaid with the caller's,
// without changing either map.
func mergeMetadata(spec, call map[string]string) map[string]string {
	if len(spec) == 0 && len(call) == 0 {
		return nil
	}
	m := make(map[string]string, len(spec)+len(call))
	maps.Copy(m, spec)
	maps.Copy(m, call)
	return m
}

// bound trims s and cuts it to MaxMessage bytes on a character boundary,
// replacing invalid UTF-8 so that the message is safe to store and show.
func bound(s string) string {
	s = strings.ToValidUTF8(strings.TrimSpace(s), "\uFFFD")
	if len(s) <= MaxMessage {
		return s
	}
	const ellipsis = "…"
	cut := MaxMessage - len(ellipsis)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + ellipsis
}
