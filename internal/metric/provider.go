package metric

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/pipit-dev/pipit/internal/rollout"
)

// ErrNoData is returned (wrapped) by a provider that answered but had no
// value: an empty query result is no data, never zero.
var ErrNoData = errors.New("no data")

// Query says what to measure: for which rollout, which version and over
// which window. Providers render their templates from it.
type Query struct {
	Rollout   string
	Namespace string
	// Version is the version measured; Role is "canary" or "stable".
	Version string
	Role    string
	// Interval is the window, ending now.
	Interval time.Duration
	// Elapsed is the time since the experiment started, or else the
	// rollout (whole seconds, at least one).
	Elapsed time.Duration
	// Vars are the analysis' variables.
	Vars map[string]string
	// Args are the metric's arguments (MetricSpec.Args), with a
	// template's defaults filled in.
	Args map[string]string
}

// Env is what providers take from the runtime that runs them.
type Env struct {
	// Clock says when now is, the end of a query's window; nil is the
	// wall clock. It also times the pauses between retries.
	Clock rollout.Clock
	// Log receives the providers' diagnostics; nil discards them.
	Log *slog.Logger
}

// withDefaults fills in the wall clock and a discarding logger.
func (e Env) withDefaults() Env {
	e.Clock = rollout.ClockOrSystem(e.Clock)
	if e.Log == nil {
		e.Log = slog.New(slog.DiscardHandler)
	}
	return e
}

// Provider measures one metric for one version.
type Provider interface {
	// Measure returns the metric's value over the query's window, an error
	// wrapping ErrNoData when there is none, or another error when the
	// measurement could not be taken.
	Measure(ctx context.Context, q Query) (float64, error)
}

// SampleProvider is a Provider that can also return the samples of the
// window (one per step, such as a range query's points), so the canary's
// distribution can be compared with the stable's.
type SampleProvider interface {
	Provider
	Samples(ctx context.Context, q Query) ([]float64, error)
}
