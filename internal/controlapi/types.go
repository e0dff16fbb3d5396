// Package controlapi is the contract between the pipit daemon and the
// people and programs that steer it: the wire types of the control API and
// the Backend interface that both the daemon (serving) and the CLI's
// clients (calling) speak.
package controlapi

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/rollout"
)

// Backend is what the CLI verbs steer. The daemon implements it in process;
// the HTTP client implements it over the control API; a Kubernetes client
// can implement it over the API server.
type Backend interface {
	// Rollouts lists every rollout, sorted by name.
	Rollouts(ctx context.Context) ([]RolloutView, error)
	// Rollout returns one rollout, or an error wrapping ErrNotFound.
	Rollout(ctx context.Context, name string) (RolloutView, error)
	// Events returns the rollout's history, oldest first; limit <= 0 is all,
	// otherwise the most recent limit events.
	Events(ctx context.Context, name string, limit int) ([]v1alpha1.Event, error)
	// Submit applies an operator command and returns the rollout once the
	// engine has acted on it. A command the rollout's state does not allow
	// returns a *RefusedError.
	Submit(ctx context.Context, name string, cmd rollout.Command) (RolloutView, error)
}

// KeyRotator is a Backend whose proxies sign sticky-session cookies: the
// standalone daemon, in process and over HTTP. In Kubernetes the cookies
// belong to the mesh or gateway, not to pipit.
type KeyRotator interface {
	// RotateCookieKeys makes a new key to sign sticky cookies with, keeps
	// the current one as the previous, saves both and hands them to every
	// rollout's proxy. The previous key's cookies are honoured for one
	// cookie TTL more; the key before it is dropped.
	RotateCookieKeys(ctx context.Context) (KeyRotation, error)
}

// SampleReader is a Backend that keeps the results of the analysis
// checks: the standalone daemon, in process and over HTTP, keeps every
// check's; in Kubernetes the controller keeps the last 60 checks' in the
// Rollout's status.recentChecks, without their messages.
type SampleReader interface {
	// Samples returns the rollout's results of metric (of every metric
	// when it is empty) from the checks made at or after since, oldest
	// first; an error wrapping ErrNotFound when there is no such rollout.
	// Retention (pipit up --retention) bounds how far back they go in
	// the standalone daemon, the last 60 checks in Kubernetes.
	Samples(ctx context.Context, name, metric string, since time.Time) ([]Sample, error)
}

// Sample is one metric's result at one analysis check.
type Sample struct {
	// At is when the check ran.
	At time.Time `json:"at"`
	v1alpha1.MetricResult
}

// SampleList is the body of GET /v1/rollouts/{name}/samples.
type SampleList struct {
	Samples []Sample `json:"samples"`
}

// KeyRotation is the body of the answer to POST /v1/keys/rotate.
type KeyRotation struct {
	// RotatedAt is when the new key replaced the previous one.
	RotatedAt time.Time `json:"rotatedAt"`
	// Rollouts are the rollouts with sticky sessions, each with the end
	// of its grace period.
	Rollouts []KeyGrace `json:"rollouts"`
}

// KeyGrace is how long one rollout's proxy honours the cookies the
// previous key signed: one cookie TTL after the rotation.
type KeyGrace struct {
	Name          string    `json:"name"`
	PreviousUntil time.Time `json:"previousUntil"`
}

// ErrNotFound is returned (wrapped) for a rollout that does not exist.
var ErrNotFound = errors.New("rollout not found")

// ErrInvalidConfig is matched (errors.Is) by a reload refused because a
// rollout file does not validate, or asks for a change that cannot be
// made now; the error's message says why, as pipit validate would.
var ErrInvalidConfig = errors.New("invalid rollout files")

// Reloader is a Backend that re-reads the rollout files it was started
// with: the standalone daemon, in process and over HTTP.
type Reloader interface {
	// Reload applies the files as they are now: rollouts added, removed
	// or changed. A refusal matches ErrInvalidConfig and changes nothing.
	Reload(ctx context.Context) (ReloadResult, error)
}

// ReloadResult is the body of the answer to POST /v1/reload: what a
// reload changed.
type ReloadResult struct {
	// Added and Removed name the rollouts that appeared in, or went from,
	// the files.
	Added   []string `json:"added"`
	Removed []string `json:"removed"`
	// Changed are the rollouts whose spec changed, with what changed.
	Changed []RolloutChange `json:"changed"`
}

// RolloutChange is what a reload changed in one rollout, named as the
// spec names the fields (strategy, service.listen, ...).
type RolloutChange struct {
	Name   string   `json:"name"`
	Fields []string `json:"fields"`
}

// RefusedError says why a command was not applied.
type RefusedError struct{ Reason string }

func (e *RefusedError) Error() string { return "refused: " + e.Reason }

// RolloutView is one rollout as shown to people: the plan, the status and
// what the proxy measures right now.
type RolloutView struct {
	Name string `json:"name"`
	// Listen is the address of the rollout's proxy, or for a flag the
	// OFREP listener's.
	Listen string `json:"listen,omitempty"`
	// Flag is the key of the flag a flag rollout rolls out; empty for a
	// service.
	Flag string `json:"flag,omitempty"`
	// Preview is the address of a blue-green rollout's preview, or the
	// name of its preview Service in Kubernetes; empty for none.
	Preview string `json:"preview,omitempty"`
	// Decision is the decision mode in force.
	Decision v1alpha1.DecisionMode `json:"decision"`
	// Steps describes each resolved step ("setWeight 5%", "pause 10m0s").
	Steps []string `json:"steps"`
	// Metrics names the analysis metrics and their bounds.
	Metrics []v1alpha1.MetricSpec `json:"metrics,omitempty"`
	// Units maps each metric with a known unit to it ("%", "ms"), as the
	// CLI prints its values; the dashboard labels its charts with them.
	Units map[string]string `json:"units,omitempty"`
	// ExperimentMargin is an experiment's margin in percentage points
	// under promoteIf: notWorse, which its status does not carry; unset
	// for any other rollout.
	// +optional
	ExperimentMargin *float64 `json:"experimentMargin,omitempty"`
	// AnalysisInterval is the time between checks.
	AnalysisInterval Duration `json:"analysisInterval"`
	// ExpectedRequestsPerSecond is the traffic the rollout file states,
	// zero when it states none.
	ExpectedRequestsPerSecond float64 `json:"expectedRequestsPerSecond,omitempty"`
	// Status is the rollout's whole state.
	Status v1alpha1.RolloutStatus `json:"status"`
	// Live is what the proxy measured since the last check, per version.
	// +optional
	Live *LiveMetrics `json:"live,omitempty"`
}

// LiveMetrics compares the versions over the current window.
type LiveMetrics struct {
	// Since is the start of the window.
	Since time.Time `json:"since"`
	// Stable and Canary are the two versions' measurements.
	Stable VersionMetrics  `json:"stable"`
	Canary *VersionMetrics `json:"canary,omitempty"`
}

// VersionMetrics is one version's traffic over a window. Absent values
// mean no data: no requests in the window.
type VersionMetrics struct {
	Version      string   `json:"version"`
	Healthy      *bool    `json:"healthy,omitempty"`
	HealthReason string   `json:"healthReason,omitempty"`
	Requests     uint64   `json:"requests"`
	SuccessRate  *float64 `json:"successRate,omitempty"`
	ErrorRate    *float64 `json:"errorRate,omitempty"`
	LatencyMean  *float64 `json:"latencyMeanMs,omitempty"`
	LatencyP50   *float64 `json:"latencyP50Ms,omitempty"`
	LatencyP95   *float64 `json:"latencyP95Ms,omitempty"`
	LatencyP99   *float64 `json:"latencyP99Ms,omitempty"`
}

// CommandRequest is the body of POST /v1/rollouts/{name}/commands.
type CommandRequest struct {
	Kind   rollout.CommandKind  `json:"kind"`
	Canary *v1alpha1.VersionRef `json:"canary,omitempty"`
	// Weight is the canary's share of traffic for set-weight, such as
	// 12.5 for 12.5%.
	Weight *v1alpha1.Percent `json:"weight,omitempty"`
	Actor  string            `json:"actor,omitempty"`
	Reason string            `json:"reason,omitempty"`
}

// ErrorResponse is the body of every non-2xx answer.
type ErrorResponse struct {
	Error string `json:"error"`
}

// Duration is a time.Duration written as "1m30s" in JSON.
type Duration time.Duration

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return []byte(`"` + time.Duration(d).String() + `"`), nil
}

// UnmarshalJSON reads a duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	if len(b) < 2 || b[0] != '"' {
		return fmt.Errorf("duration must be a string like \"1m\"")
	}
	v, err := time.ParseDuration(string(b[1 : len(b)-1]))
	*d = Duration(v)
	return err
}

// Files the daemon keeps in its state directory besides the database.
const (
	// TokenFile holds the control API's bearer token (mode 0600).
	TokenFile = "token"
	// AddressFile holds the control API's address, written at start.
	AddressFile = "api-address"
)

// StateDir resolves the state directory: the flag if given, else
// $PIPIT_STATE_DIR, else $XDG_STATE_HOME/pipit, else ~/.local/state/pipit.
func StateDir(flag string) string {
	if flag != "" {
		return flag
	}
	if d := os.Getenv("PIPIT_STATE_DIR"); d != "" {
		return d
	}
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "pipit")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".local", "state", "pipit")
	}
	return ".pipit"
}
