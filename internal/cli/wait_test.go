package cli

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/controlapi"
	"github.com/pipit-dev/pipit/internal/testenv/fakeclock"
)

// ended returns web in phase p, as a rollout started at start.
func ended(p v1alpha1.Phase, start time.Time) controlapi.RolloutView {
	v := webView(start)
	v.Live = nil
	v.Status.Phase, v.Status.StartedAt = p, mtime(start)
	if p == v1alpha1.PhaseRolledBack {
		v.Status.Rollback = &v1alpha1.Rollback{Reason: "latency-p99 1520ms > max 500ms"}
	}
	return v
}

var (
	lastRelease = time.Date(2026, 7, 1, 9, 0, 0, 0, time.UTC)
	thisRelease = lastRelease.Add(time.Hour)
)

// watchExitCases are get --watch runs on web, as the views scripted one
// per look, and the exit code each must end with.
var watchExitCases = []struct {
	name   string
	views  []controlapi.RolloutView
	args   []string
	code   int
	stderr string
}{
	{"succeeded", []controlapi.RolloutView{ended(v1alpha1.PhaseProgressing, thisRelease), ended(v1alpha1.PhaseSucceeded, thisRelease)},
		nil, ExitOK, ""},
	{"rolled back", []controlapi.RolloutView{ended(v1alpha1.PhaseProgressing, thisRelease), ended(v1alpha1.PhaseRolledBack, thisRelease)},
		nil, ExitFailed, "rollout web ended RolledBack: latency-p99 1520ms > max 500ms"},
	{"aborted", []controlapi.RolloutView{ended(v1alpha1.PhaseAwaitingDecision, thisRelease), ended(v1alpha1.PhaseAborted, thisRelease)},
		nil, ExitFailed, "ended Aborted"},
	{"failed", []controlapi.RolloutView{ended(v1alpha1.PhasePaused, thisRelease), ended(v1alpha1.PhaseFailed, thisRelease)},
		nil, ExitFailed, "ended Failed"},
	{"timeout", []controlapi.RolloutView{ended(v1alpha1.PhaseProgressing, thisRelease)}, []string{"--timeout", "300ms"},
		ExitTimeout, "rollout web did not end within 300ms"},
	// Nothing in flight: the last outcome is a previous release's; the
	// watch follows the next rollout to its end.
	{"next rollout", []controlapi.RolloutView{ended(v1alpha1.PhaseSucceeded, lastRelease), ended(v1alpha1.PhaseSucceeded, lastRelease),
		ended(v1alpha1.PhaseProgressing, thisRelease), ended(v1alpha1.PhaseRolledBack, thisRelease)},
		nil, ExitFailed, "web has no rollout in flight (Succeeded): waiting for the next one to start and end"},
	{"next rollout ended between two looks", []controlapi.RolloutView{ended(v1alpha1.PhaseRolledBack, lastRelease),
		ended(v1alpha1.PhaseSucceeded, thisRelease)}, nil, ExitOK, "no rollout in flight (RolledBack)"},
	{"idle until the timeout", []controlapi.RolloutView{idleView()}, []string{"--timeout", "300ms"}, ExitTimeout, "no rollout in flight (Idle)"},
}

func TestGetWatchExitCodes(t *testing.T) {
	f := newFakeBackend()
	dir := startDaemon(t, f)
	for _, tt := range watchExitCases {
		t.Run(tt.name, func(t *testing.T) {
			f.mu.Lock()
			f.script["web"] = tt.views
			f.gets = 0
			f.mu.Unlock()
			args := append([]string{"get", "web", "--watch", "--interval", "100ms", "--state-dir", dir}, tt.args...)
			code, out, errOut := run(t, args...)
			if code != tt.code || !strings.Contains(errOut, tt.stderr) {
				t.Fatalf("exit %d, stderr %q; want %d mentioning %q", code, errOut, tt.code, tt.stderr)
			}
			if tt.code != ExitTimeout && f.gets != len(tt.views) {
				t.Errorf("%d looks, want %d", f.gets, len(tt.views))
			}
			if last := tt.views[len(tt.views)-1]; !strings.HasSuffix(out, watchView(last)) {
				t.Errorf("output does not end with the last view:\n%s", out)
			}
		})
	}
}

// TestWatchTimeoutOnTheClock: --timeout is measured on the command's
// clock, and a watch still in flight then ends with ExitTimeout.
func TestWatchTimeoutOnTheClock(t *testing.T) {
	f := newFakeBackend()
	clock := fakeclock.New(lastRelease)
	w := watchOf(clock, f, time.Second, io.Discard, false)
	w.timeout = 10 * time.Second
	done := make(chan error, 1)
	go func() { done <- w.watch(context.Background(), nil) }()
	for range 9 {
		if !clock.WaitForTimers(2, 5*time.Second) {
			t.Fatal("the watch does not wait for its interval and its timeout")
		}
		clock.Advance(time.Second)
	}
	select {
	case err := <-done:
		t.Fatalf("the watch ended after 9s of a 10s timeout: %v", err)
	default:
	}
	clock.WaitForTimers(2, 5*time.Second)
	clock.Advance(time.Second)
	select {
	case err := <-done:
		var c exitCode
		if !errors.As(err, &c) || c.code != ExitTimeout {
			t.Fatalf("watch ended with %v, want exit %d", err, ExitTimeout)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the watch did not end at its timeout")
	}
}

// deployWaitCases are deploy --wait runs on api (idle), as the views
// scripted for the looks after the deploy, and the exit code of each.
var deployWaitCases = []struct {
	name  string
	after []controlapi.RolloutView
	args  []string
	code  int
	want  string
}{
	{"promoted", []controlapi.RolloutView{ended(v1alpha1.PhaseSucceeded, thisRelease)}, []string{"--wait"}, ExitOK, ""},
	{"rolled back", []controlapi.RolloutView{ended(v1alpha1.PhaseRolledBack, thisRelease)}, []string{"--wait", "--timeout", "1m"},
		ExitFailed, "ended RolledBack"},
	{"timeout", []controlapi.RolloutView{ended(v1alpha1.PhaseProgressing, thisRelease)}, []string{"--wait", "--timeout", "300ms"},
		ExitTimeout, "did not end within 300ms"},
	{"timeout without wait", nil, []string{"--timeout", "1m"}, ExitBadInput, "--timeout goes with --wait"},
	{"negative timeout", nil, []string{"--wait", "--timeout", "-1s"}, ExitBadInput, "want a positive duration"},
}

func TestDeployWaitExitCodes(t *testing.T) {
	for _, tt := range deployWaitCases {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeBackend()
			dir := startDaemon(t, f)
			for i := range tt.after {
				tt.after[i].Name = "api"
			}
			f.script["api"] = tt.after
			args := append([]string{"deploy", "api", "--canary", "http://127.0.0.1:9009", "--state-dir", dir}, tt.args...)
			code, out, errOut := run(t, args...)
			if code != tt.code || !strings.Contains(errOut, tt.want) {
				t.Fatalf("exit %d, stderr %q; want %d mentioning %q", code, errOut, tt.code, tt.want)
			}
			if tt.code == ExitBadInput {
				if len(f.submitted) != 0 {
					t.Fatal("a refused command line deployed")
				}
				return
			}
			// A look comes every second: the timeout case ends before one.
			if !strings.HasPrefix(out, "api: Progressing") || (tt.code != ExitTimeout && !strings.HasSuffix(out, watchView(tt.after[0]))) {
				t.Fatalf("output:\n%s", out)
			}
		})
	}
}

func TestDeployWaitRefused(t *testing.T) {
	f := newFakeBackend()
	dir := startDaemon(t, f)
	f.views["web"] = ended(v1alpha1.PhasePromoting, thisRelease)
	code, out, errOut := run(t, "deploy", "web", "--canary", "http://127.0.0.1:9009", "--wait", "--state-dir", dir)
	if code != ExitFailed || !strings.Contains(errOut, "refused") || out != "" {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}
