package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// HookType says when a webhook runs and what its answer means. The types
// and their meaning are Flagger's, so that gates written for Flagger work
// unchanged. A hook "answers yes" when an HTTP hook returns a 2xx status, a
// command exits 0, or a load test got at least one HTTP answer.
// +kubebuilder:validation:Enum=confirm-rollout;pre-rollout;rollout;confirm-traffic-increase;confirm-promotion;post-rollout;rollback;event;contract
type HookType string

const (
	// HookConfirmRollout runs before a new canary starts and is polled,
	// once per analysis interval, until it answers yes; the rollout waits
	// meanwhile without sending the canary any traffic. A "no" or no answer
	// only means "not yet": it never fails the rollout, though the progress
	// deadline still runs.
	HookConfirmRollout HookType = "confirm-rollout"
	// HookPreRollout runs once before any traffic moves to the canary. Each
	// failed run counts toward the analysis' failure limit and is tried
	// again at the next interval; one failure past the limit rolls back.
	HookPreRollout HookType = "pre-rollout"
	// HookRollout runs at every analysis interval while the canary gets
	// traffic, typically a load test so that the metrics have samples. Each
	// failure counts toward the analysis' failure limit, like a failed
	// metric.
	HookRollout HookType = "rollout"
	// HookConfirmTrafficIncrease gates every increase of the canary's
	// weight: it is polled at each interval and the weight stays where it
	// is until it answers yes. A "no" never fails the rollout.
	HookConfirmTrafficIncrease HookType = "confirm-traffic-increase"
	// HookConfirmPromotion gates the promotion: after the last step it is
	// polled at each interval and the canary is promoted once it answers
	// yes; the canary keeps its last weight meanwhile and analysis goes on.
	HookConfirmPromotion HookType = "confirm-promotion"
	// HookPostRollout runs once after the rollout ends, promoted or rolled
	// back. Its result is only recorded; it changes nothing.
	HookPostRollout HookType = "post-rollout"
	// HookRollback is polled at every interval while the canary is being
	// analysed, including while it waits on a confirm hook. Its meaning is
	// reversed: a yes (2xx, exit 0) means "roll back now", while a "no" or
	// no answer lets the rollout go on. It lets an outside system such as an
	// alerting pipeline abort a rollout.
	HookRollback HookType = "rollback"
	// HookEvent is sent for every event of the rollout (the entries of
	// `pipit history`), with the event in the payload. It is fire and
	// forget: it never delays the rollout and its result is only logged.
	HookEvent HookType = "event"
	// HookContract runs once after a promotion, when the rollback window
	// (undoWindow) has closed without an undo: the "contract" half of an
	// expand/contract database migration, such as dropping a column only
	// the old version read. It never runs after a rollback or an undo.
	// Failures are recorded and notified; the rollout stays promoted.
	HookContract HookType = "contract"
)

// WebhookSpec is one hook: what runs (an HTTP endpoint, a local command or
// the built-in load test; exactly one of URL, Command and LoadTest) and when
// (Type). Every run sends the same JSON payload (rollout, phase, versions,
// step, weight, metadata): as the body of an HTTP POST, or on a command's
// standard input.
//
// +kubebuilder:validation:XValidation:rule="(has(self.url) ? 1 : 0) + (has(self.command) ? 1 : 0) + (has(self.loadTest) ? 1 : 0) == 1",message="a hook needs exactly one of url, command and loadTest"
type WebhookSpec struct {
	// Name identifies the hook in logs, history and notifications.
	Name string `json:"name"`
	// Type says when the hook runs and what its answer means.
	Type HookType `json:"type"`

	// URL is the http or https endpoint the payload is POSTed to. A 2xx
	// answer is a yes; any other answer is a no. Transport errors, timeouts
	// and 5xx answers are retried (see Retries); a 4xx answer is a
	// definitive no and is not retried. Redirects are not followed.
	// +optional
	URL string `json:"url,omitempty"`
	// Command is the argv of a local command, run without a shell. Exit
	// status 0 is a yes; any other exit status is a definitive no. The
	// payload comes on standard input and the main fields also as PIPIT_*
	// environment variables. On timeout the command's whole process group
	// is killed.
	// +optional
	Command []string `json:"command,omitempty"`
	// Env adds environment variables to a command hook, on top of pipit's
	// own environment.
	// +optional
	Env map[string]string `json:"env,omitempty"`
	// LoadTest runs pipit's built-in load generator, a yes when at least one
	// request got an HTTP answer. Meant for rollout hooks (traffic so that
	// metrics have samples) and pre-rollout hooks (a smoke test).
	// +optional
	LoadTest *LoadTestHook `json:"loadTest,omitempty"`

	// Timeout bounds one attempt of an HTTP or command hook; for a load
	// test it bounds each request. Default 10s.
	// +optional
	Timeout *metav1.Duration `json:"timeout,omitempty"`
	// Retries is how many more attempts an HTTP or command hook gets when an
	// attempt got no answer (a transport error, a timeout, a 5xx, a command
	// killed by a signal), with exponential backoff and jitter. Default 2.
	// Load tests are not retried.
	// +optional
	Retries *int32 `json:"retries,omitempty"`
	// Metadata is sent as-is in the payload, for the receiver's use.
	// +optional
	Metadata map[string]string `json:"metadata,omitempty"`

	// SecretEnv names an environment variable of pipit holding the shared
	// secret an HTTP hook is signed with (HMAC-SHA256, see SecretFile).
	// +optional
	SecretEnv string `json:"secretEnv,omitempty"`
	// SecretFile is a file holding the shared secret an HTTP hook is signed
	// with; surrounding white space is ignored. With a secret, each request
	// carries X-Pipit-Timestamp (Unix seconds) and X-Pipit-Signature:
	// sha256=<hex HMAC-SHA256 of timestamp + "." + body>. Signing the
	// timestamp lets a receiver refuse old requests replayed by someone who
	// recorded them. When the secret cannot be read the hook fails rather
	// than send an unsigned request.
	// +optional
	SecretFile string `json:"secretFile,omitempty"`
}

// LoadTestHook is the built-in load test: requests at a constant rate for a
// fixed time, as `pipit loadtest` sends them. It takes the place of
// Flagger's load tester and `hey -z 1m -q 10 -c 2 URL`.
type LoadTestHook struct {
	// URL is the absolute http or https address to request, usually the
	// built-in proxy or the canary itself.
	URL string `json:"url"`
	// Method is the HTTP method; default GET.
	// +optional
	Method string `json:"method,omitempty"`
	// Rate is the number of requests started per second.
	Rate int32 `json:"rate"`
	// Duration is how long the test runs. It should be shorter than the
	// analysis interval, since a rollout hook runs at every interval.
	Duration *metav1.Duration `json:"duration"`
	// Headers are sent with every request; a Host header sets the host the
	// request is addressed to.
	// +optional
	Headers map[string]string `json:"headers,omitempty"`
}
