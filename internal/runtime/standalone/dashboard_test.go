package standalone

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/controlapi"
	"github.com/pipit-dev/pipit/internal/loadgen"
	"github.com/pipit-dev/pipit/internal/rollout"
	"github.com/pipit-dev/pipit/internal/sampleapp"
	"github.com/pipit-dev/pipit/internal/testenv/nettest"
	"github.com/pipit-dev/pipit/internal/testenv/tools"
)

// chromiumPath is Debian's chromium, which the test installs when missing.
const chromiumPath = "/usr/bin/chromium"

// screenshotsEnv, when set to 1, makes the dashboard test write its
// screenshots into docs/img, the ones the README shows.
const screenshotsEnv = "PIPIT_DASHBOARD_SCREENSHOTS"

// manualYAML is a canary that waits for a person's promote after each
// stage: 20%, then 60%.
func manualYAML(stableURL string) []byte {
	return []byte(fmt.Sprintf(webService+`  strategy:
    steps:
    - setWeight: 20
    - setWeight: 60
  decision: manual
  analysis:
    interval: 300ms
    metrics:
    - name: request-success-rate
      thresholdRange: {min: 99}
    - name: latency-p99
      thresholdRange: {max: 5000}
`, stableURL))
}

// browser starts a headless Chromium of its own, closed at the end of the
// test; its context ends after limit.
func browser(t *testing.T, limit time.Duration) context.Context {
	t.Helper()
	tools.EnsureDebian(t, "chromium", chromiumPath)
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromiumPath), chromedp.NoSandbox,
		chromedp.DisableGPU, chromedp.WindowSize(1280, 1000), chromedp.UserDataDir(t.TempDir()))
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(cancel)
	ctx, cancelTime := context.WithTimeout(ctx, limit)
	t.Cleanup(cancelTime)
	return ctx
}

// waitText waits until the visible text of the element sel holds want.
func waitText(sel, want string) chromedp.Action[chromedp.Void] {
	return waitTrue(fmt.Sprintf(`(document.querySelector(%q) || {}).innerText?.includes(%q)`, sel, want))
}

// waitTrue waits until the script expr is true in the page.
func waitTrue(expr string) chromedp.Action[chromedp.Void] {
	poll := chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(60*time.Second))
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := poll(ctx, tg)
		return err
	})
}

// screenshot saves the page, a PNG (quality 100), as name in docs/img when screenshotsEnv asks,
// else in a temporary directory, and fails the test on an empty picture.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil || len(png) < 1000 {
		t.Fatalf("screenshot %s: %v (%d bytes)", name, err, len(png))
	}
	dir := t.TempDir()
	if os.Getenv(screenshotsEnv) == "1" {
		root, err := tools.RepoRoot()
		if err != nil {
			t.Fatal(err)
		}
		dir = filepath.Join(root, "docs", "img")
	}
	if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// In a real headless Chromium: a person logs in with an operator's token,
// sees the rollout wait at 20% for a decision, presses promote and
// confirms, and sees the rollout go to 60% and the history name the token.
func TestDashboardInChromium(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Chromium")
	}
	stable := app(t, sampleapp.Config{Version: "v1"})
	canary := app(t, sampleapp.Config{Version: "v2"})
	d, c := startDaemon(t, t.TempDir(), manualYAML(stable.URL))
	alice, err := d.CreateToken(context.Background(), "alice", controlapi.RoleOperator)
	if err != nil {
		t.Fatal(err)
	}
	addr, _ := d.ProxyAddr("web")
	loadCtx, stopLoad := context.WithCancel(context.Background())
	t.Cleanup(stopLoad)
	// Traffic for the whole test, so that the checks have data to judge.
	go loadgen.Run(loadCtx, loadgen.Config{URL: "http://" + addr + "/", Rate: 20, Duration: 5 * time.Minute})
	deployV2(t, c, canary.URL)
	waitFor(t, c, 30*time.Second, "waiting at 20%", func(st v1alpha1.RolloutStatus) bool {
		return st.CanaryWeight == v1alpha1.PercentOf(20) && st.Gate != nil
	})

	ctx := browser(t, 4*time.Minute)
	err = chromedp.Do(ctx,
		chromedp.Navigate("http://"+d.APIAddr()+"/ui/"),
		chromedp.WaitVisible(chromedp.CSS("#token")),
		chromedp.SendKeys(chromedp.CSS("#token"), alice.Token),
		chromedp.Click(chromedp.CSS(`#login-form button[type="submit"]`)),
		waitText("#who", "alice (operator)"),
		waitText("#rollouts", "20%"),
	)
	if err != nil {
		t.Fatalf("log in and see the list: %v\npage: %s", err, pageText(ctx))
	}
	screenshot(t, ctx, "dashboard-list.png")
	promoteInBrowser(t, ctx)
	events, err := c.Events(context.Background(), "web", 0)
	if err != nil {
		t.Fatal(err)
	}
	if last := events[len(events)-1]; !strings.Contains(historyText(events), "60%") || !actedBy(events, "alice") {
		t.Errorf("history has no promote by alice; last %+v%s", last, historyText(events))
	}
	newRunChartsItsOwnChecks(t, ctx, c)
}

// newRunChartsItsOwnChecks deploys v3 in place of the canary under way,
// at an address where nothing answers, so that it never gets traffic nor
// checks, and waits for the verdicts to be empty: v2's are not mixed in.
func newRunChartsItsOwnChecks(t *testing.T, ctx context.Context, c controlapi.Backend) {
	t.Helper()
	if _, err := c.Submit(context.Background(), "web", rollout.Command{Kind: rollout.CommandDeploy, Actor: "test",
		Canary: &v1alpha1.VersionRef{Version: "v3", URL: nettest.DeadURL(t).String()}}); err != nil {
		t.Fatal(err)
	}
	err := chromedp.Do(ctx,
		waitText("#d-facts", "v3"),
		waitTrue(`document.querySelectorAll("#d-verdicts tr").length === 0`),
	)
	if err != nil {
		t.Fatalf("the verdicts of the new run: %v\npage: %s", err, pageText(ctx))
	}
}

// promoteInBrowser opens the rollout, presses promote, confirms with a
// reason, and waits for the weight and the history to show it.
func promoteInBrowser(t *testing.T, ctx context.Context) {
	t.Helper()
	err := chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`#rollouts a`)),
		waitText("#d-facts", "20%"),
		waitText("#d-facts", "Stage"),
		waitText("#d-live", "canary v2"),
		waitText("#d-verdicts", "request-success-rate"),
		waitText("#d-metrics", "latency-p99 (ms)"),
	)
	if err != nil {
		t.Fatalf("open the rollout: %v\npage: %s", err, pageText(ctx))
	}
	screenshot(t, ctx, "dashboard-rollout.png")
	err = chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`#d-actions button[data-kind="promote"]`)),
		chromedp.WaitVisible(chromedp.CSS("#confirm-reason")),
		chromedp.SendKeys(chromedp.CSS("#confirm-reason"), "metrics look good"),
	)
	if err != nil {
		t.Fatalf("press promote: %v\npage: %s", err, pageText(ctx))
	}
	screenshot(t, ctx, "dashboard-confirm.png")
	err = chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS("#confirm-ok")),
		waitText("#d-facts", "60%"),
		waitText("#d-history", "alice"),
		waitText("#d-history", "metrics look good"),
	)
	if err != nil {
		t.Fatalf("confirm the promote: %v\npage: %s", err, pageText(ctx))
	}
	err = chromedp.Do(ctx, chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile), waitText("#d-facts", "60%"))
	if err != nil {
		t.Fatalf("phone-sized viewport: %v\npage: %s", err, pageText(ctx))
	}
	screenshot(t, ctx, "dashboard-phone.png")
}

// actedBy reports whether an event of the history names actor.
func actedBy(events []v1alpha1.Event, actor string) bool {
	for _, e := range events {
		if e.Actor == actor {
			return true
		}
	}
	return false
}

// pageText is what the page shows, for a failure's message.
func pageText(ctx context.Context) string {
	text, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText`))
	if err != nil {
		return "(unreadable: " + err.Error() + ")"
	}
	return text
}

// experimentYAML is an A/B test of v2 against v1 on the sample app's goal
// (POST /checkout), its users keyed by X-User-ID, looked at every 300ms
// once both variants have 50 visitors.
func experimentYAML(stableURL string) []byte {
	return []byte(fmt.Sprintf(webService+`    traffic:
      userKey: [{header: X-User-ID}]
  strategy:
    experiment:
      minSample: 50
      maxDuration: 1m
  analysis:
    interval: 300ms
    goals:
    - {name: checkout, method: {exact: POST}, path: {exact: /checkout}}
    metrics:
    - name: request-success-rate
      thresholdRange: {min: 99}
`, stableURL))
}

// bothVariantsVisited holds once the experiment's table has a row per
// variant, each with visitors.
const bothVariantsVisited = `(() => {
  const rows = [...document.querySelectorAll("#d-x-variants tr")];
  return rows.length === 2 && rows.every((r) => Number(r.children[1].textContent) > 0);
})()`

// In a real headless Chromium: a viewer opens a rollout that runs an
// experiment, whose simulated users convert at 10% on v1 and 30% on v2,
// sees the experiment's panel count both variants' visitors, then name the
// treatment the winner beside the chart of the conversion at each look.
func TestDashboardShowsAnExperiment(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Chromium")
	}
	stable := app(t, sampleapp.Config{Version: "v1", ConversionRate: 0.1})
	canary := app(t, sampleapp.Config{Version: "v2", ConversionRate: 0.3})
	d, c := startDaemon(t, t.TempDir(), experimentYAML(stable.URL))
	bob, err := d.CreateToken(context.Background(), "bob", controlapi.RoleViewer)
	if err != nil {
		t.Fatal(err)
	}
	addr, _ := d.ProxyAddr("web")
	loadCtx, stopLoad := context.WithCancel(context.Background())
	t.Cleanup(stopLoad)
	go loadgen.RunUsers(loadCtx, loadgen.UsersConfig{URL: "http://" + addr + "/", Rate: 100, Duration: time.Minute, Timeout: 5 * time.Second})
	deployV2(t, c, canary.URL)

	ctx := browser(t, time.Minute)
	err = chromedp.Do(ctx,
		chromedp.Navigate("http://"+d.APIAddr()+"/ui/#/rollouts/web"),
		chromedp.WaitVisible(chromedp.CSS("#token")),
		chromedp.SendKeys(chromedp.CSS("#token"), bob.Token),
		chromedp.Click(chromedp.CSS(`#login-form button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS("#d-experiment")),
		waitText("#d-x-facts", "checkout"),
		waitText("#d-x-variants", "control v1"),
		waitText("#d-x-variants", "treatment v2"),
		waitTrue(bothVariantsVisited),
	)
	if err != nil {
		t.Fatalf("open the experiment: %v\npage: %s", err, pageText(ctx))
	}
	err = chromedp.Do(ctx,
		waitText("#d-x-facts .winner", "treatment (v2)"),
		waitText("#d-x-chart", "treatment"),
		chromedp.WaitVisible(chromedp.CSS("#d-x-chart canvas")),
		waitText("#d-x-facts", "Interval (95%)"),
	)
	if err != nil {
		t.Fatalf("see the treatment win: %v\npage: %s", err, pageText(ctx))
	}
	screenshot(t, ctx, "dashboard-experiment.png")
	if st := waitFor(t, c, 10*time.Second, "the winner in status", func(st v1alpha1.RolloutStatus) bool { return st.Experiment != nil }); st.Experiment.Winner != v1alpha1.WinnerTreatment {
		t.Errorf("the page shows the treatment winning, the status %+v", st.Experiment)
	}
}
