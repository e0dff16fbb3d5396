package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/loadgen"
)

// Request rates of the tests under load, per second: through the process
// rollout, and through each of the others.
const (
	loadRate      = 300
	otherLoadRate = 50
)

// urlRolloutYAML is a rollout of a fixed URL that only serves.
const urlRolloutYAML = `apiVersion: pipit.dev/v1alpha1
kind: Rollout
metadata: {name: %s}
spec:
  service:
    listen: %s
    stable: {url: %q, version: v1}
  strategy:
    steps: [{setWeight: 50}]
  decision: manual
`

// load sends rate requests a second to addr until stop is called, which
// returns what they saw.
func load(t testing.TB, addr string, rate int) (stop func() loadgen.Summary) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan loadgen.Summary, 1)
	go func() {
		s, err := loadgen.Run(ctx, loadgen.Config{URL: "http://" + addr + "/", Rate: rate, Duration: time.Hour, Timeout: 30 * time.Second})
		if err != nil {
			t.Error(err)
		}
		done <- s
	}()
	var once sync.Once
	var summary loadgen.Summary
	stop = func() loadgen.Summary {
		once.Do(func() {
			cancel()
			summary = <-done
		})
		return summary
	}
	t.Cleanup(func() { stop() }) // a test that ends early stops its load too
	return stop
}

// checkNoFailure fails unless every request of s was answered 200.
func checkNoFailure(t testing.TB, what string, s loadgen.Summary) {
	t.Helper()
	if s.Requests == 0 || s.StatusCodes["200"] != int(s.Requests) {
		t.Errorf("%s: %d requests, answers %v, errors %v", what, s.Requests, s.StatusCodes, s.Errors)
	}
}

// buildPipit builds cmd/pipit afresh into a directory of the test's.
func buildPipit(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "pipit-next")
	out, err := exec.Command("go", "build", "-o", bin, "../cmd/pipit").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// TestNoRequestFailsAcrossReloadHandOverAndRollback is the proof under
// load: loadRate requests a second through the proxy while the daemon
// reloads its files (a rollout added, another's plan changed), hands over
// to a freshly built binary, and rolls a canary back in the middle of the
// hand-over. No request fails and no decision is written twice.
func TestNoRequestFailsAcrossReloadHandOverAndRollback(t *testing.T) {
	fx := newHandOverFixture(t)
	next := buildPipit(t) // before the load: a build takes both cores
	more := filepath.Join(t.TempDir(), "more.yaml")
	apiAddr, shopAddr := freePort(t), freePort(t)
	apiURL := sampleApp(t, "api-v1")
	writeDocs(t, more, fmt.Sprintf(urlRolloutYAML, "api", apiAddr, apiURL))
	old := fx.up(nil, true, more)
	stopWeb, stopAPI := load(t, fx.listen, loadRate), load(t, apiAddr, otherLoadRate)

	// A reload that adds a rollout and changes another's plan.
	writeDocs(t, more, fmt.Sprintf(urlRolloutYAML, "api", apiAddr, apiURL),
		fmt.Sprintf(urlRolloutYAML, "shop", shopAddr, sampleApp(t, "shop-v1")))
	changed, err := os.ReadFile(fx.rollout)
	if err != nil {
		t.Fatal(err)
	}
	writeDocs(t, fx.rollout, strings.Replace(string(changed), "- setWeight: 80", "- setWeight: 70\n    - setWeight: 90", 1))
	if err := old.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("first daemon:\n%s", old.output())
		}
	})
	waitAnswers(t, shopAddr)
	stopShop := load(t, shopAddr, otherLoadRate)
	fx.startCanary(old)

	// The hand-over to a new binary, with a rollback asked for meanwhile.
	fx.bin = next
	newDaemon := fx.up(nil, false)
	abort := make(chan result, 1)
	go func() { abort <- pipit(t, 60*time.Second, "abort", "web", "--state-dir", fx.state) }()
	if code := old.awaitExit(60 * time.Second); code != 0 || !strings.Contains(old.output(), "handed over to pid ") {
		t.Fatalf("the old daemon exited %d:\n%s", code, old.output())
	}
	if r := <-abort; r.code != 0 {
		t.Fatalf("pipit abort during the hand-over: exit %d: %s%s", r.code, r.stdout, r.stderr)
	}
	newDaemon.waitFor(30*time.Second, "aborted", func(st v1alpha1.RolloutStatus) bool { return st.Phase == v1alpha1.PhaseAborted })
	time.Sleep(time.Second) // load on the rolled-back proxy too
	checkNoFailure(t, "web", stopWeb())
	checkNoFailure(t, "api", stopAPI())
	checkNoFailure(t, "shop", stopShop())
	events := newDaemon.history()
	checkNoEventTwice(t, events)
	for reason, want := range map[string]int{"Reloaded": 1, "RollingBack": 1, "Aborted": 1} {
		if n := countReason(events, reason); n != want {
			t.Errorf("%d %s events, want %d", n, reason, want)
		}
	}
}

// sampleApp runs `pipit sample-app` answering version, with more of its
// flags if given, in a process of its own (the test process is busy
// sending the load), and returns its URL.
func sampleApp(t testing.TB, version string, flags ...string) string {
	t.Helper()
	addr := freePort(t)
	cmd := exec.Command(pipitBin, append([]string{"sample-app", "--listen", addr, "--version", version}, flags...)...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	waitAnswers(t, addr)
	return "http://" + addr
}

// writeDocs writes a multi-document YAML file.
func writeDocs(t testing.TB, path string, docs ...string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(strings.Join(docs, "---\n")), 0o600); err != nil {
		t.Fatal(err)
	}
}

// handOverWindow is how long load runs before and after the hand-over in
// BenchmarkHandOver, and how long the baseline run is.
const handOverWindow = 2 * time.Second

// BenchmarkHandOver measures what clients see of a hand-over: loadRate
// requests a second through the proxy for a baseline window, then for a
// window with a hand-over in its middle. Each iteration hands over once
// (to the same binary); the metrics are of the last iteration.
//
//	go test -run '^$' -bench HandOver -benchtime 3x ./e2e
func BenchmarkHandOver(b *testing.B) {
	fx := newHandOverFixture(b)
	d := fx.up(nil, true)
	fx.startCanary(d)
	var base, during loadgen.Summary
	for b.Loop() {
		stop := load(fx.t, fx.listen, loadRate)
		time.Sleep(handOverWindow)
		base = stop()
		stop = load(fx.t, fx.listen, loadRate)
		time.Sleep(handOverWindow / 2)
		next := fx.up(nil, false)
		if code := d.awaitExit(60 * time.Second); code != 0 {
			b.Fatalf("the old daemon exited %d:\n%s", code, d.output())
		}
		time.Sleep(handOverWindow)
		during, d = stop(), next
		if failed := int(during.Requests) - during.StatusCodes["200"]; failed > 0 || base.StatusCodes["200"] != int(base.Requests) {
			b.Fatalf("failed requests: baseline %v, during the hand-over %v %v", base.StatusCodes, during.StatusCodes, during.Errors)
		}
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(ms(base.Latencies.P99), "base-p99-ms")
	b.ReportMetric(ms(base.Latencies.Max), "base-max-ms")
	b.ReportMetric(ms(during.Latencies.P99), "handover-p99-ms")
	b.ReportMetric(ms(during.Latencies.Max), "handover-max-ms")
	b.ReportMetric(float64(during.Requests), "handover-requests")
}
