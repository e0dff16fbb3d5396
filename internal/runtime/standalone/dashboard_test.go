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
	"github.com/pipit-dev/pipit/internal/sampleapp"
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
	expr := fmt.Sprintf(`(document.querySelector(%q) || {}).innerText?.includes(%q)`, sel, want)
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
