package standalone

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/analysis"
	"github.com/pipit-dev/pipit/internal/client"
	"github.com/pipit-dev/pipit/internal/controlapi"
	"github.com/pipit-dev/pipit/internal/loadgen"
	"github.com/pipit-dev/pipit/internal/rollout"
	"github.com/pipit-dev/pipit/internal/sampleapp"
)

// app starts a sample app on loopback.
func app(t *testing.T, cfg sampleapp.Config) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(sampleapp.Handler(cfg))
	t.Cleanup(s.Close)
	return s
}

// webService heads the test rollouts named web: a service on a free
// port whose stable version v1 is the URL formatted into it (%q),
// health-checked every 100 ms.
const webService = `apiVersion: pipit.dev/v1alpha1
kind: Rollout
metadata:
  name: web
spec:
  service:
    listen: 127.0.0.1:0
    stable: {url: %q, version: v1}
    healthCheck: {interval: 100ms, timeout: 2s, failureThreshold: 2}
`

// rolloutYAML is a short rollout: 5% → 1s → 50% → pause → promoted, with a
// check every 300ms and fast health checks.
func rolloutYAML(stableURL, lastPause string) []byte {
	return []byte(fmt.Sprintf(webService+`  strategy:
    steps:
    - setWeight: 5
    - pause: {duration: 1s}
    - setWeight: 50
    - pause: {duration: %s}
  analysis:
    interval: 300ms
    failureLimit: 1
    metrics:
    - name: request-success-rate
      thresholdRange: {min: 99}
`, stableURL, lastPause))
}

func startDaemon(t *testing.T, dir string, doc []byte) (*Daemon, *client.HTTP) {
	t.Helper()
	return startConfig(t, Config{Sources: []Source{{File: "web.yaml", Data: doc}}, StateDir: dir})
}

// startConfig starts a daemon of cfg with its control API on a free port,
// stopped at the end of the test, and a client of it.
func startConfig(t *testing.T, cfg Config) (*Daemon, *client.HTTP) {
	t.Helper()
	cfg.APIAddr, cfg.Logger = "127.0.0.1:0", slog.New(slog.DiscardHandler)
	d, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Stop(context.Background()) })
	c, err := client.FromStateDir(cfg.StateDir)
	if err != nil {
		t.Fatal(err)
	}
	return d, c
}

// waitFor polls the rollout over the control API until cond holds.
func waitFor(t *testing.T, c controlapi.Backend, limit time.Duration, what string, cond func(v1alpha1.RolloutStatus) bool) v1alpha1.RolloutStatus {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		v, err := c.Rollout(context.Background(), "web")
		if err != nil {
			// One slow answer on a starved machine is no failure; an API
			// that keeps failing until the deadline is.
			if time.Now().After(deadline) {
				t.Fatal(err)
			}
			time.Sleep(100 * time.Millisecond)
			continue
		}
		if cond(v.Status) {
			return v.Status
		}
		if time.Now().After(deadline) {
			events, _ := c.Events(context.Background(), "web", 0)
			t.Fatalf("%s not reached within %s: phase %s weight %s (%s)\nhistory: %s", what, limit, v.Status.Phase,
				v.Status.CanaryWeight, v.Status.Message, historyText(events))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func phaseIs(p v1alpha1.Phase) func(v1alpha1.RolloutStatus) bool {
	return func(st v1alpha1.RolloutStatus) bool { return st.Phase == p }
}

func historyText(events []v1alpha1.Event) string {
	var b strings.Builder
	for _, e := range events {
		b.WriteString("\n  " + string(e.Phase) + " " + e.Weight.String() + " " + e.Message)
	}
	return b.String()
}

func deployV2(t *testing.T, c controlapi.Backend, url string) {
	t.Helper()
	if _, err := c.Submit(context.Background(), "web", rollout.Command{Kind: rollout.CommandDeploy, Actor: "test",
		Canary: &v1alpha1.VersionRef{Version: "v2", URL: url}}); err != nil {
		t.Fatal(err)
	}
}

// versionsServed sends n requests through the proxy and counts the
// versions that answered; any non-200 fails the test.
func versionsServed(t *testing.T, proxyAddr string, n int) map[string]int {
	t.Helper()
	seen := map[string]int{}
	for range n {
		resp, err := http.Get("http://" + proxyAddr + "/")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d from the proxy", resp.StatusCode)
		}
		seen[resp.Header.Get("X-Pipit-Version")]++
	}
	return seen
}

// startLoad sends rate requests a second through the proxy at addr, for
// 30s at the most; stopLoad ends it at once and returns what it got.
func startLoad(t *testing.T, addr string, rate int) (stopLoad func() loadgen.Summary) {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel) // a test that fails before stopLoad leaves no load running
	done := make(chan loadgen.Summary, 1)
	go func() {
		s, _ := loadgen.Run(ctx, loadgen.Config{URL: "http://" + addr + "/", Rate: rate, Duration: 30 * time.Second})
		done <- s
	}()
	return func() loadgen.Summary {
		cancel()
		return <-done
	}
}

// checkAllAnswered fails the test unless every answer the load got was a
// 200, and at least 100 were. Code 0 counts requests without any answer,
// such as those cut off when the load stops, or client timeouts on a
// starved machine; they are not answers from the proxy.
func checkAllAnswered(t *testing.T, load loadgen.Summary) {
	t.Helper()
	for code, n := range load.StatusCodes {
		if code != "200" && code != "0" {
			t.Errorf("%d answers with status %s during the rollout", n, code)
		}
	}
	if load.StatusCodes["200"] < 100 {
		t.Errorf("only %d requests answered: %v, errors %v", load.StatusCodes["200"], load.StatusCodes, load.Errors)
	}
}

func TestHealthyCanaryPromotedUnderLoadWithoutErrors(t *testing.T) {
	stable := app(t, sampleapp.Config{Version: "v1"})
	canary := app(t, sampleapp.Config{Version: "v2"})
	d, c := startDaemon(t, t.TempDir(), rolloutYAML(stable.URL, "1s"))
	addr, _ := d.ProxyAddr("web")

	stopLoad := startLoad(t, addr, 150)
	deployV2(t, c, canary.URL)
	st := waitFor(t, c, 40*time.Second, "Succeeded", phaseIs(v1alpha1.PhaseSucceeded))
	load := stopLoad()

	if st.Stable.Version != "v2" || st.Canary != nil {
		t.Errorf("after promotion stable %+v canary %+v", st.Stable, st.Canary)
	}
	// Neither the weight changes nor the promotion may make the proxy
	// fail a request.
	checkAllAnswered(t, load)
	if seen := versionsServed(t, addr, 50); seen["v2"] != 50 {
		t.Errorf("after promotion the proxy served %v, want only v2", seen)
	}
	events, _ := c.Events(context.Background(), "web", 0)
	h := historyText(events)
	// deployV2 sends the actor "test"; the history names the token's name.
	for _, want := range []string{"started by admin", "Routed 5% of traffic", "Routed 50% of traffic", "Metrics healthy", "v2 is now the stable version"} {
		if !strings.Contains(h, want) {
			t.Errorf("history lacks %q: %s", want, h)
		}
	}
}

func TestFaultyCanaryRolledBackWithTheMetricNamed(t *testing.T) {
	stable := app(t, sampleapp.Config{Version: "v1"})
	canary := app(t, sampleapp.Config{Version: "v2", ErrorRate: 0.5})
	d, c := startDaemon(t, t.TempDir(), rolloutYAML(stable.URL, "1s"))
	addr, _ := d.ProxyAddr("web")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go loadgen.Run(ctx, loadgen.Config{URL: "http://" + addr + "/", Rate: 200, Duration: 30 * time.Second})

	deployV2(t, c, canary.URL)
	st := waitFor(t, c, 40*time.Second, "RolledBack", phaseIs(v1alpha1.PhaseRolledBack))
	// Whichever sees it first decides: the threshold check, the
	// sequential error-rate test between checks, or the proxy's outlier
	// detection (five failures in a row: one chance in 32 at a time with
	// half the answers failing). Each must be named.
	switch {
	case st.Rollback == nil:
		t.Errorf("no rollback recorded")
	case st.Rollback.Metric == "request-success-rate" && strings.Contains(st.Rollback.Reason, "< min 99"):
	case st.Rollback.Metric == analysis.ErrorRateAlarm && strings.Contains(st.Rollback.Reason, "is higher than stable's"):
	case strings.Contains(st.Rollback.Reason, "ejected by the proxy: 5 failures in a row"):
	default:
		t.Errorf("rollback %+v, want the deciding metric named", st.Rollback)
	}
	if seen := versionsServed(t, addr, 100); seen["v1"] != 100 {
		t.Errorf("after rollback the proxy served %v, want only v1", seen)
	}
	// The rolled-back canary can be retried, and is rolled back again.
	if _, err := c.Submit(context.Background(), "web", rollout.Command{Kind: rollout.CommandRetry}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, c, 20*time.Second, "RolledBack again", phaseIs(v1alpha1.PhaseRolledBack))
}

func TestCanaryThatStopsAnsweringIsRolledBackAtOnce(t *testing.T) {
	stable := app(t, sampleapp.Config{Version: "v1"})
	canary := app(t, sampleapp.Config{Version: "v2"})
	d, c := startDaemon(t, t.TempDir(), rolloutYAML(stable.URL, "1h"))
	addr, _ := d.ProxyAddr("web")
	deployV2(t, c, canary.URL)
	waitFor(t, c, 10*time.Second, "50%", func(st v1alpha1.RolloutStatus) bool { return st.CanaryWeight == v1alpha1.PercentOf(50) })

	canary.CloseClientConnections()
	canary.Close()
	killed := time.Now()
	st := waitFor(t, c, 5*time.Second, "RolledBack", phaseIs(v1alpha1.PhaseRolledBack))
	// Health is probed every 100ms and two failures mark it down: well
	// under the 300ms analysis interval plus slack for a loaded machine.
	if took := time.Since(killed); took > 2*time.Second {
		t.Errorf("rollback took %s after the canary died", took)
	}
	if !strings.Contains(st.Rollback.Reason, "canary v2 is down") {
		t.Errorf("reason %q", st.Rollback.Reason)
	}
	if seen := versionsServed(t, addr, 50); seen["v1"] != 50 {
		t.Errorf("after the canary died the proxy served %v", seen)
	}
}

func TestOperatorCommandsOverTheControlAPI(t *testing.T) {
	stable := app(t, sampleapp.Config{Version: "v1"})
	canary := app(t, sampleapp.Config{Version: "v2"})
	d, c := startDaemon(t, t.TempDir(), rolloutYAML(stable.URL, "1h"))
	ctx := context.Background()
	// An operator's token of its own: the history names it, not the
	// actor the client sends.
	tok, err := c.CreateToken(ctx, "ops", controlapi.RoleOperator)
	if err != nil {
		t.Fatal(err)
	}
	ops := client.NewHTTP("http://"+d.APIAddr(), tok.Token)

	_, err = c.Submit(ctx, "web", rollout.Command{Kind: rollout.CommandPromote})
	var refused *controlapi.RefusedError
	if !errors.As(err, &refused) {
		t.Fatalf("promote on an idle rollout: %v, want refused", err)
	}
	if _, err := c.Rollout(ctx, "nope"); !errors.Is(err, controlapi.ErrNotFound) {
		t.Errorf("unknown rollout: %v", err)
	}
	deployV2(t, c, canary.URL)
	waitFor(t, c, 10*time.Second, "5%", func(st v1alpha1.RolloutStatus) bool { return st.CanaryWeight > 0 })
	v, err := ops.Submit(ctx, "web", rollout.Command{Kind: rollout.CommandPause, Actor: "mallory", Reason: "lunch"})
	if err != nil || v.Status.Phase != v1alpha1.PhasePaused {
		t.Fatalf("pause: %v %s", err, v.Status.Phase)
	}
	if v, err = c.Submit(ctx, "web", rollout.Command{Kind: rollout.CommandResume}); err != nil || v.Status.Phase != v1alpha1.PhaseProgressing {
		t.Fatalf("resume: %v %s", err, v.Status.Phase)
	}
	if v, err = c.Submit(ctx, "web", rollout.Command{Kind: rollout.CommandPromote}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, c, 10*time.Second, "50%", func(st v1alpha1.RolloutStatus) bool { return st.CanaryWeight == v1alpha1.PercentOf(50) })
	if v, err = ops.Submit(ctx, "web", rollout.Command{Kind: rollout.CommandAbort}); err != nil || v.Status.Phase != v1alpha1.PhaseAborted {
		t.Fatalf("abort: %v %s", err, v.Status.Phase)
	}
	events, err := c.Events(ctx, "web", 0)
	if err != nil {
		t.Fatal(err)
	}
	h := historyText(events)
	// The actor is the name of the token the daemon authenticated, not
	// the "mallory" the client sent; the reason stays the client's.
	for _, want := range []string{"Paused by ops: lunch", "Resumed by admin", "skipped", "aborted by ops"} {
		if !strings.Contains(h, want) {
			t.Errorf("history lacks %q: %s", want, h)
		}
	}
	if v.Live == nil || v.Live.Stable.Version != "v1" {
		t.Errorf("live metrics %+v", v.Live)
	}
}

func TestRestartResumesAtTheSameStepAndWeight(t *testing.T) {
	stable := app(t, sampleapp.Config{Version: "v1"})
	canary := app(t, sampleapp.Config{Version: "v2"})
	dir := t.TempDir()
	doc := rolloutYAML(stable.URL, "1h")
	d, c := startDaemon(t, dir, doc)
	deployV2(t, c, canary.URL)
	before := waitFor(t, c, 10*time.Second, "50%", func(st v1alpha1.RolloutStatus) bool { return st.CanaryWeight == v1alpha1.PercentOf(50) })
	if err := d.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}

	d2, c2 := startDaemon(t, dir, doc)
	after, err := c2.Rollout(context.Background(), "web")
	if err != nil {
		t.Fatal(err)
	}
	if after.Status.CurrentStep != before.CurrentStep || after.Status.CanaryWeight != before.CanaryWeight ||
		!after.Status.StepStartedAt.Equal(before.StepStartedAt) {
		t.Errorf("after restart step %d weight %s started %v; before step %d weight %s started %v",
			after.Status.CurrentStep, after.Status.CanaryWeight, after.Status.StepStartedAt,
			before.CurrentStep, before.CanaryWeight, before.StepStartedAt)
	}
	addr, _ := d2.ProxyAddr("web")
	if seen := versionsServed(t, addr, 200); seen["v2"] < 60 || seen["v1"] < 60 {
		t.Errorf("after restart the proxy split %v, want about half each", seen)
	}
}

func TestBadRolloutFileStartsNothing(t *testing.T) {
	dir := t.TempDir() + "/state"
	bad := []byte("apiVersion: pipit.dev/v1alpha1\nkind: Rollout\nmetadata: {name: web}\nspec:\n  service:\n    listen: 127.0.0.1:0\n    stable: {url: http://127.0.0.1:1}\n  strategy:\n    stepz: []\n")
	_, err := Start(context.Background(), Config{Sources: []Source{{File: "web.yaml", Data: bad}}, StateDir: dir, APIAddr: "127.0.0.1:0"})
	var cfgErr *ConfigError
	if !errors.As(err, &cfgErr) || !strings.Contains(err.Error(), "web.yaml:9") || !strings.Contains(err.Error(), "stepz") {
		t.Fatalf("err %v, want a ConfigError naming web.yaml:9 and the field", err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("a refused file created the state directory")
	}
}
