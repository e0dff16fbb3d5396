package pipit

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	of "github.com/open-feature/go-sdk/openfeature"
)

// rolloutFile rolls the new-checkout flag out to half the users, with
// the error rate they report checked every 300 ms.
const rolloutFile = `apiVersion: pipit.dev/v1alpha1
kind: Rollout
metadata: {name: web}
spec:
  flag:
    key: new-checkout
    variants: {on: true, off: false}
    defaultVariant: off
  strategy:
    steps: [{setWeight: 50}, {pause: {}}]
  analysis:
    interval: 300ms
    failureLimit: 1
    metrics:
    - name: error-rate
      thresholdRange: {max: 5}
`

// pipitUp builds pipit from this repository, runs `pipit up --ofrep` on
// rolloutFile and returns a command runner and the provider's options.
func pipitUp(t *testing.T) (run func(args ...string) string, opts Options) {
	t.Helper()
	bin, dir := filepath.Join(t.TempDir(), "pipit"), t.TempDir()
	build := exec.Command("go", "build", "-o", bin, "./cmd/pipit")
	build.Dir = "../.."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building pipit: %v\n%s", err, out)
	}
	file := filepath.Join(dir, "flag.yaml")
	if err := os.WriteFile(file, []byte(rolloutFile), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	up := exec.CommandContext(ctx, bin, "up", "--state-dir", dir, "--api", "127.0.0.1:0", "--ofrep", "127.0.0.1:0", "-f", file)
	if err := up.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); up.Wait() })
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(filepath.Join(dir, "api-address")); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("pipit up did not start")
		}
	}
	addr, _ := os.ReadFile(filepath.Join(dir, "ofrep-address"))
	token, _ := os.ReadFile(filepath.Join(dir, "ofrep-token"))
	run = func(args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, bin, append(args, "--state-dir", dir)...).CombinedOutput()
		if err != nil {
			t.Fatalf("pipit %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	return run, Options{URL: "http://" + strings.TrimSpace(string(addr)), Token: strings.TrimSpace(string(token)), FlushInterval: 50 * time.Millisecond}
}

// phase is the rollout's phase as pipit status says.
func phase(t *testing.T, run func(...string) string) string {
	var v struct {
		Status struct{ Phase string } `json:"status"`
	}
	out := run("status", "web", "-o", "json")
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("pipit status: %v\n%s", err, out)
	}
	return v.Status.Phase
}

// TestProviderWithTheSDK runs the OpenFeature Go SDK with the provider
// against pipit: users who get the new variant track failing requests,
// the events roll the flag back, and everyone then gets false, DISABLED.
func TestProviderWithTheSDK(t *testing.T) {
	run, opts := pipitUp(t)
	p := New(opts)
	if err := of.SetNamedProviderAndWait("pipit-test", p); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(of.Shutdown)
	client := of.NewClient("pipit-test")
	ctx := context.Background()
	user := func(i int) of.EvaluationContext { return of.NewEvaluationContext(fmt.Sprint("user-", i), nil) }
	if d, err := client.BooleanValueDetails(ctx, "new-checkout", true, user(0)); err != nil || d.Value || d.Reason != "DEFAULT" || d.Variant != "off" {
		t.Fatalf("before the rollout: %+v %v", d, err)
	}
	run("deploy", "web", "--version", "on")
	on := 0
	for deadline := time.Now().Add(30 * time.Second); phase(t, run) != "RolledBack"; {
		if time.Now().After(deadline) {
			t.Fatalf("not rolled back: %s", run("history", "web"))
		}
		for i := range 100 {
			v, err := client.BooleanValue(ctx, "new-checkout", false, user(i))
			if err != nil {
				t.Fatal(err)
			}
			outcome := "success"
			if v {
				outcome, on = "error", on+1
			}
			client.Track(ctx, outcome, user(i), of.NewTrackingEventDetails(15))
		}
		time.Sleep(100 * time.Millisecond)
	}
	if on == 0 || p.Dropped() != 0 {
		t.Errorf("%d evaluations on, %d events dropped", on, p.Dropped())
	}
	for i := range 100 {
		if d, err := client.BooleanValueDetails(ctx, "new-checkout", true, user(i)); err != nil || d.Value || d.Reason != "DISABLED" {
			t.Fatalf("user %d after the rollback: %+v %v", i, d, err)
		}
	}
	// A flag read as the wrong type is the application's error.
	if _, err := client.StringValue(ctx, "new-checkout", "x", user(0)); err == nil || !strings.Contains(err.Error(), "TYPE_MISMATCH") {
		t.Errorf("a boolean read as a string: %v", err)
	}
	if _, err := client.BooleanValue(ctx, "nope", false, user(0)); err == nil || !strings.Contains(err.Error(), "FLAG_NOT_FOUND") {
		t.Errorf("an unknown flag: %v", err)
	}
}

// TestTrackNamesTheGoal checks the events Track sends: an outcome with
// its latency, and a conversion naming the goal its name is.
func TestTrackNamesTheGoal(t *testing.T) {
	got := make(chan []event, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var b struct{ Events []event }
		if err := json.NewDecoder(r.Body).Decode(&b); err != nil || r.URL.Path != "/v1/flags/new-checkout/events" {
			t.Errorf("%s: %v", r.URL.Path, err)
		}
		got <- b.Events
		w.WriteHeader(http.StatusAccepted)
	}))
	defer srv.Close()
	p := New(Options{URL: srv.URL, FlushInterval: time.Hour})
	user := of.NewEvaluationContext("user-1", nil)
	on := func(v float64) of.TrackingEventDetails {
		return of.NewTrackingEventDetails(v).Add("flag", "new-checkout")
	}
	p.Track(context.Background(), "success", user, on(12))
	p.Track(context.Background(), "purchase", user, on(0))
	p.Shutdown()
	want := []event{{TargetingKey: "user-1", Kind: EventSuccess, LatencyMs: 12}, {TargetingKey: "user-1", Kind: EventConversion, Goal: "purchase"}}
	if events := <-got; !slices.Equal(events, want) {
		t.Errorf("sent %+v, want %+v", events, want)
	}
}
