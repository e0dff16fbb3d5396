package standalone

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/sampleapp"
	"github.com/pipit-dev/pipit/internal/testenv/promserver"
)

// goalRolloutYAML judges the canary by its conversion rate against the
// stable's, at 50% for 8s: the users, keyed by X-User-ID, convert when
// they POST /buy.
func goalRolloutYAML(stableURL string) []byte {
	return []byte(fmt.Sprintf(`apiVersion: pipit.dev/v1alpha1
kind: Rollout
metadata:
  name: web
spec:
  service:
    listen: 127.0.0.1:0
    stable: {url: %q, version: v1}
    traffic:
      userKey: [{header: X-User-ID}]
  strategy:
    steps:
    - setWeight: 50
    - pause: {duration: 8s}
  analysis:
    interval: 2s
    failureLimit: 0
    sequential: {enabled: false}
    goals:
    - {name: buy, method: {exact: POST}, path: {exact: /buy}}
    metrics:
    - name: conversion-rate
      compare: {}
`, stableURL))
}

// shoppers sends new users through the proxy at addr until the test
// ends or stop is called: each opens the home page and then buys with
// the probability that buys gives for the version that answered, as
// users of a shop whose new version makes buying harder (or easier) do.
func shoppers(t *testing.T, addr string, buys map[string]float64) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for w := range 2 {
		wg.Go(func() {
			client := &http.Client{Timeout: 5 * time.Second}
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			for i := 0; ctx.Err() == nil; i++ {
				user := strconv.Itoa(w) + "-" + strconv.Itoa(i)
				version := shop(ctx, client, addr, http.MethodGet, "/", user)
				if rng.Float64() < buys[version] {
					shop(ctx, client, addr, http.MethodPost, "/buy", user)
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
	stop = func() { cancel(); wg.Wait() }
	t.Cleanup(stop)
	return stop
}

// shop sends one request of user and returns the version that answered,
// empty when none did.
func shop(ctx context.Context, client *http.Client, addr, method, path, user string) string {
	req, err := http.NewRequestWithContext(ctx, method, "http://"+addr+path, nil)
	if err != nil {
		return ""
	}
	req.Header.Set("X-User-ID", user)
	res, err := client.Do(req)
	if err != nil {
		return ""
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.Header.Get("X-Pipit-Version")
}

// TestConversionRateDecides: a canary whose users buy less often than
// the stable's is rolled back on conversion-rate; one whose users buy
// more often is promoted (a lower conversion rate is the bad change).
func TestConversionRateDecides(t *testing.T) {
	run := func(t *testing.T, canaryBuys float64, want v1alpha1.Phase) v1alpha1.RolloutStatus {
		stable, canary := app(t, sampleapp.Config{Version: "v1"}), app(t, sampleapp.Config{Version: "v2"})
		d, c := startDaemon(t, t.TempDir(), goalRolloutYAML(stable.URL))
		addr, _ := d.ProxyAddr("web")
		stop := shoppers(t, addr, map[string]float64{"v1": 0.5, "v2": canaryBuys})
		defer stop()
		deployV2(t, c, canary.URL)
		return waitFor(t, c, 60*time.Second, string(want), func(st v1alpha1.RolloutStatus) bool {
			if st.Phase == v1alpha1.PhaseSucceeded || st.Phase == v1alpha1.PhaseRolledBack {
				if st.Phase != want {
					events, _ := c.Events(context.Background(), "web", 0)
					t.Fatalf("phase %s, want %s; rollback %+v\nhistory: %s", st.Phase, want, st.Rollback, historyText(events))
				}
				return true
			}
			return false
		})
	}
	t.Run("canary converting worse rolled back", func(t *testing.T) {
		st := run(t, 0.1, v1alpha1.PhaseRolledBack)
		if st.Rollback == nil || !strings.Contains(st.Rollback.Reason, "conversion-rate Low") {
			t.Errorf("rollback %+v, want conversion-rate named Low", st.Rollback)
		}
	})
	t.Run("canary converting better promoted", func(t *testing.T) {
		st := run(t, 0.7, v1alpha1.PhaseSucceeded)
		if st.Stable == nil || st.Stable.Version != "v2" {
			t.Errorf("stable after the promotion: %+v", st.Stable)
		}
	})
}

// TestConversionRateFromPrometheusGoal: a goal the application counts in
// Prometheus judges a standalone canary as the proxy's counts do, with no
// user key: a canary whose users buy less is rolled back on it.
func TestConversionRateFromPrometheusGoal(t *testing.T) {
	counters := promserver.Counters(t, map[string]float64{
		`visitors_total{version="v1"}`: 100, `buys_total{version="v1"}`: 50,
		`visitors_total{version="v2"}`: 100, `buys_total{version="v2"}`: 10,
	})
	prom := promserver.Start(t, []string{counters}, 200*time.Millisecond)
	stable, canary := app(t, sampleapp.Config{Version: "v1"}), app(t, sampleapp.Config{Version: "v2"})
	yaml := strings.Replace(strings.Replace(string(goalRolloutYAML(stable.URL)),
		"    - {name: buy, method: {exact: POST}, path: {exact: /buy}}\n", fmt.Sprintf(`    - name: buy
      prometheus:
        address: %s
        visitors: sum(increase(visitors_total{version="{{ .Version }}"}[{{ .Elapsed }}]))
        conversions: sum(increase(buys_total{version="{{ .Version }}"}[{{ .Elapsed }}]))
`, prom.URL), 1), "    traffic:\n      userKey: [{header: X-User-ID}]\n", "", 1)
	_, c := startDaemon(t, t.TempDir(), []byte(yaml))
	deployV2(t, c, canary.URL)
	st := waitFor(t, c, 60*time.Second, "the rollback", func(st v1alpha1.RolloutStatus) bool { return st.Phase.Terminal() })
	if st.Phase != v1alpha1.PhaseRolledBack || st.Rollback == nil || !strings.Contains(st.Rollback.Reason, "conversion-rate Low") {
		t.Errorf("phase %s, rollback %+v: want conversion-rate named Low", st.Phase, st.Rollback)
	}
}
