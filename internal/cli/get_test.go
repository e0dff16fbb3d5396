package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/controlapi"
	"github.com/pipit-dev/pipit/internal/rollout"
	"github.com/pipit-dev/pipit/internal/testenv/fakeclock"
)

func TestWatchView(t *testing.T) {
	now := time.Date(2026, 7, 1, 9, 5, 0, 0, time.UTC)
	want := `web  Progressing  stable v1, canary v2
[#####...............] 25%
Step 4/6 pause 10m0s
routing 25% to canary v2

               STABLE v1   CANARY v2
Requests       1200        400
Success rate   99.9%       99.75%
Latency p50    12.3ms      14ms
Latency p99    45.2ms      1.52s
Health         healthy     healthy
`
	if got := watchView(webView(now)); got != want {
		t.Fatalf("watchView:\n%s\nwant:\n%s", got, want)
	}
	if a, b := watchView(webView(now)), watchView(webView(now.Add(time.Hour))); a != b {
		t.Fatal("the view depends on the clock, so an unchanged rollout would be redrawn")
	}
}

func TestWatchViewWaitingAndRolledBack(t *testing.T) {
	now := time.Date(2026, 7, 1, 9, 5, 0, 0, time.UTC)
	v := webView(now)
	v.Status.Phase = v1alpha1.PhaseAwaitingDecision
	v.Status.Gate = &v1alpha1.Gate{Kind: v1alpha1.GateAnomaly, Reason: "latency-p99 1520ms > max 500ms"}
	v.Live = nil
	got := watchView(v)
	for _, want := range []string{
		"web  AwaitingDecision  stable v1, canary v2\n",
		"Waiting for a person (Anomaly): latency-p99 1520ms > max 500ms\n  go on: pipit promote web    roll back: pipit abort web\n",
		"no measurements yet\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("view lacks %q:\n%s", want, got)
		}
	}

	v = idleView()
	v.Status.Phase = v1alpha1.PhaseRolledBack
	v.Status.Rollback = &v1alpha1.Rollback{Reason: "canary unhealthy"}
	got = watchView(v)
	if !strings.Contains(got, "[....................] 0%\nStep 1/1 setWeight 10%\nRollback: canary unhealthy\n") {
		t.Errorf("rolled-back view:\n%s", got)
	}
}

// watchOf watches web on f, with notes discarded and no timeout.
func watchOf(clock rollout.Clock, f *fakeBackend, interval time.Duration, out io.Writer, tty bool) *watcher {
	return &watcher{clock: clock, backend: f, name: "web", interval: interval, out: out, notes: io.Discard, tty: tty}
}

// moving returns views of web at weights 5, 5, 25 and then succeeded.
func moving(now time.Time) []controlapi.RolloutView {
	at := func(w v1alpha1.Percent, p v1alpha1.Phase) controlapi.RolloutView {
		v := webView(now)
		v.Live = nil
		v.Status.CanaryWeight, v.Status.Phase, v.Status.Message = w, p, fmt.Sprintf("at %s", w)
		return v
	}
	return []controlapi.RolloutView{
		at(5000, v1alpha1.PhaseProgressing), at(5000, v1alpha1.PhaseProgressing),
		at(25000, v1alpha1.PhaseProgressing), at(v1alpha1.FullWeight, v1alpha1.PhaseSucceeded),
	}
}

func TestWatchPrintsOnlyChanges(t *testing.T) {
	f := newFakeBackend()
	views := moving(time.Now())
	f.script["web"] = views
	var out bytes.Buffer
	if err := watchOf(rollout.SystemClock{}, f, time.Millisecond, &out, false).watch(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	want := watchView(views[0]) + "\n" + watchView(views[2]) + "\n" + watchView(views[3])
	if out.String() != want {
		t.Fatalf("output:\n%s\nwant:\n%s", out.String(), want)
	}
	if f.gets != 4 {
		t.Fatalf("%d looks, want 4: the watch must stop at the terminal phase", f.gets)
	}
}

// TestWatchLooksOncePerInterval: between two looks the watch waits one
// interval on its clock, no less.
func TestWatchLooksOncePerInterval(t *testing.T) {
	f := newFakeBackend()
	views := moving(time.Now())
	f.script["web"] = views
	looks := func() int {
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.gets
	}
	clock := fakeclock.New(time.Date(2026, 7, 1, 12, 0, 0, 0, time.UTC))
	const interval = 2 * time.Second
	done := make(chan error, 1)
	go func() { done <- watchOf(clock, f, interval, io.Discard, false).watch(context.Background(), nil) }()
	for look := 1; look < len(views); look++ {
		if !clock.WaitForTimers(1, 5*time.Second) {
			t.Fatalf("the watch does not wait after look %d", look)
		}
		clock.Advance(interval - time.Nanosecond)
		if n := looks(); n != look {
			t.Fatalf("%d looks a nanosecond before the interval ended, want %d", n, look)
		}
		clock.Advance(time.Nanosecond)
	}
	select {
	case err := <-done:
		if err != nil || looks() != len(views) {
			t.Fatalf("watch ended with %v after %d looks, want %d", err, looks(), len(views))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the watch did not stop at the terminal phase")
	}
}

func TestWatchRedrawsInPlaceOnATerminal(t *testing.T) {
	f := newFakeBackend()
	views := moving(time.Now())
	f.script["web"] = views
	var out bytes.Buffer
	if err := watchOf(rollout.SystemClock{}, f, time.Millisecond, &out, true).watch(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	up := func(v controlapi.RolloutView) string {
		return fmt.Sprintf("\x1b[%dA\x1b[J", strings.Count(watchView(v), "\n"))
	}
	want := watchView(views[0]) + up(views[0]) + watchView(views[2]) + up(views[2]) + watchView(views[3])
	if out.String() != want {
		t.Fatalf("output %q\nwant   %q", out.String(), want)
	}
}

func TestWatchInterruptedIsNoSuccess(t *testing.T) {
	f := newFakeBackend()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var out bytes.Buffer
	err := watchOf(rollout.SystemClock{}, f, time.Hour, &out, false).watch(ctx, nil)
	if c, ok := err.(exitCode); !ok || c.code != ExitInterrupted {
		t.Fatalf("cancelled watch: %v, want exit %d", err, ExitInterrupted)
	}
}

func TestGetCommand(t *testing.T) {
	f := newFakeBackend()
	dir := startDaemon(t, f)

	code, out, errOut := run(t, "get", "web", "--state-dir", dir)
	if code != ExitOK || out != watchView(webView(time.Now())) {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}

	views := moving(time.Now())
	f.mu.Lock()
	f.script["web"] = views
	f.mu.Unlock()
	code, out, errOut = run(t, "get", "web", "--watch", "--interval", "100ms", "--state-dir", dir)
	if code != ExitOK {
		t.Fatalf("watch: exit %d: %s", code, errOut)
	}
	if !strings.HasSuffix(out, watchView(views[3])) || strings.Count(out, "web  ") != 3 {
		t.Fatalf("watch output:\n%s", out)
	}

	f.mu.Lock()
	f.script["web"] = views
	f.mu.Unlock()
	code, out, errOut = run(t, "get", "web", "--watch", "--interval", "100ms", "-o", "yaml", "--state-dir", dir)
	if code != ExitOK {
		t.Fatalf("watch -o yaml: exit %d: %s", code, errOut)
	}
	var weights []float64
	for dec := yaml.NewDecoder(strings.NewReader(out)); ; {
		var doc struct {
			Status struct {
				CanaryWeight float64 `yaml:"canaryWeight"`
			} `yaml:"status"`
		}
		if err := dec.Decode(&doc); err != nil {
			break
		}
		weights = append(weights, doc.Status.CanaryWeight)
	}
	if !slices.Equal(weights, []float64{5, 25, 100}) {
		t.Fatalf("watch -o yaml: documents of weights %v, want one per change:\n%s", weights, out)
	}

	for _, tt := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"get", "--state-dir", dir}, ExitBadInput, "accepts 1 arg"},
		{[]string{"get", "web", "--watch", "--interval", "0s", "--state-dir", dir}, ExitBadInput, "--interval"},
		{[]string{"get", "nope", "--watch", "--state-dir", dir}, ExitFailed, "not found"},
	} {
		if code, _, errOut := run(t, tt.args...); code != tt.code || !strings.Contains(errOut, tt.want) {
			t.Errorf("%v: exit %d, stderr %q; want %d mentioning %q", tt.args, code, errOut, tt.code, tt.want)
		}
	}
}
