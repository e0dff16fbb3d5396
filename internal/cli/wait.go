package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/controlapi"
	"github.com/pipit-dev/pipit/internal/rollout"
)

// exitCode makes a command exit with code instead of ExitFailed.
type exitCode struct {
	code int
	err  error
}

func (e exitCode) Error() string { return e.err.Error() }
func (e exitCode) Unwrap() error { return e.err }

// errTimedOut is why a wait's context ends at --timeout.
var errTimedOut = errors.New("timed out")

// watcher shows one rollout until it ends, for get --watch and deploy
// --wait, and turns how it ended into the exit code a CI job reads.
type watcher struct {
	clock    rollout.Clock
	backend  controlapi.Backend
	name     string
	interval time.Duration
	// timeout bounds the whole wait; 0 waits for as long as it takes.
	timeout time.Duration
	// out gets the views; notes what is said once, beside them.
	out, notes io.Writer
	// tty redraws the view in place instead of appending it.
	tty bool
	// render draws one look at the rollout; nil is watchView, for people.
	render func(controlapi.RolloutView) (string, error)
}

// watch shows the rollout until it ends and returns its outcome: nil when
// it succeeded, an error (exit 1) when it was rolled back, aborted or
// failed, an exitCode of ExitTimeout at the timeout and of ExitInterrupted
// when ctx ends first. started, when not nil, is the rollout as the caller
// just started it, followed to its end. Otherwise, if the first look finds
// nothing in flight, the watch waits for the next rollout to start and
// follows that one: the last outcome may be a previous release's, and a
// CI job that just changed the version must not pass on it.
func (w *watcher) watch(ctx context.Context, started *controlapi.RolloutView) error {
	ctx, cancel := withTimeout(ctx, w.clock, w.timeout)
	defer cancel()
	var (
		last       string
		stale      *metav1.MicroTime
		staleKnown bool
	)
	for look := 0; ; look++ {
		var v controlapi.RolloutView
		if look == 0 && started != nil {
			v = *started
		} else {
			var err error
			if v, err = w.backend.Rollout(ctx, w.name); err != nil {
				return w.stopped(ctx, err)
			}
		}
		var err error
		if last, err = w.draw(v, last); err != nil {
			return err
		}
		if look == 0 && started == nil && !inFlight(v.Status.Phase) {
			stale, staleKnown = v.Status.StartedAt, true
			fmt.Fprintf(w.notes, "%s has no rollout in flight (%s): waiting for the next one to start and end\n", w.name, phase(v.Status.Phase))
		}
		if v.Status.Phase.Terminal() && !(staleKnown && sameTime(stale, v.Status.StartedAt)) {
			return outcome(v)
		}
		if err := rollout.Sleep(ctx, w.clock, w.interval); err != nil {
			return w.stopped(ctx, nil)
		}
	}
}

// draw shows v if it differs from the last view shown, and returns the
// view now on screen. On a terminal it redraws in place; elsewhere it
// appends, so a log holds each state once.
func (w *watcher) draw(v controlapi.RolloutView, last string) (string, error) {
	view := watchView(v)
	if w.render != nil {
		var err error
		if view, err = w.render(v); err != nil {
			return last, err
		}
	}
	if view == last {
		return last, nil
	}
	switch {
	case w.tty && last != "":
		// Up to the first line of the old view, then clear below.
		fmt.Fprintf(w.out, "\x1b[%dA\x1b[J", strings.Count(last, "\n"))
	case last != "":
		fmt.Fprintln(w.out)
	}
	_, err := io.WriteString(w.out, view)
	return view, err
}

// stopped says why a watch ended before the rollout did: at the timeout,
// interrupted, or err.
func (w *watcher) stopped(ctx context.Context, err error) error {
	switch {
	case errors.Is(context.Cause(ctx), errTimedOut):
		return exitCode{ExitTimeout, fmt.Errorf("rollout %s did not end within %s", w.name, w.timeout)}
	case ctx.Err() != nil:
		return exitCode{ExitInterrupted, fmt.Errorf("stopped watching rollout %s before it ended", w.name)}
	}
	return err
}

// inFlight reports whether a rollout in phase p has a canary on its way.
func inFlight(p v1alpha1.Phase) bool { return p != "" && p != v1alpha1.PhaseIdle && !p.Terminal() }

// sameTime reports whether a and b are the same instant, or both unset.
func sameTime(a, b *metav1.MicroTime) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Equal(b)
}

// outcome is the end of a rollout as the exit status says it: nil when it
// succeeded, else an error naming the phase and why.
func outcome(v controlapi.RolloutView) error {
	st := v.Status
	if st.Phase == v1alpha1.PhaseSucceeded {
		return nil
	}
	why := st.Message
	if st.Rollback != nil {
		why = st.Rollback.Reason
	}
	return fmt.Errorf("rollout %s ended %s: %s", v.Name, st.Phase, why)
}

// withTimeout is context.WithTimeout on clock, whose end has errTimedOut
// as its cause; d = 0 sets no timeout.
func withTimeout(ctx context.Context, clock rollout.Clock, d time.Duration) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(ctx)
	if d <= 0 {
		return ctx, func() { cancel(nil) }
	}
	t := clock.NewTimer(d)
	go func() {
		defer t.Stop()
		select {
		case <-t.C():
			cancel(errTimedOut)
		case <-ctx.Done():
		}
	}()
	return ctx, func() { cancel(nil) }
}

// checkTimeout refuses a negative --timeout, or one given without the
// flag (--watch, --wait) that makes the command wait.
func checkTimeout(cmd *cobra.Command, timeout time.Duration, waitFlag string) error {
	if timeout < 0 {
		return BadInputf("--timeout %v: want a positive duration, or 0 for no limit", timeout)
	}
	if cmd.Flags().Changed("timeout") && !cmd.Flags().Changed(waitFlag) {
		return BadInputf("--timeout goes with --%s", waitFlag)
	}
	return nil
}
