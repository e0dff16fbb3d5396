package standalone

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/controlapi"
	"github.com/pipit-dev/pipit/internal/rollout"
	"github.com/pipit-dev/pipit/internal/sampleapp"
	"github.com/pipit-dev/pipit/internal/testenv/nettest"
)

// fleetMachine is one machine of a fleet: a sample app on a port of its
// own, which a test stops and starts again on the same port.
type fleetMachine struct {
	t       *testing.T
	addr    string
	handler http.Handler
	srv     *http.Server
	served  atomic.Int64 // requests to "/"
}

func startMachine(t *testing.T, version string) *fleetMachine {
	t.Helper()
	m := &fleetMachine{t: t, addr: freeAddr(t)}
	app := sampleapp.Handler(sampleapp.Config{Version: version})
	m.handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/" {
			m.served.Add(1)
		}
		app.ServeHTTP(w, r)
	})
	m.start()
	t.Cleanup(m.stop)
	return m
}

func (m *fleetMachine) url() string { return "http://" + m.addr }

// start serves on the machine's port, waiting for it to be free again
// after a stop.
func (m *fleetMachine) start() {
	m.t.Helper()
	var l net.Listener
	nettest.Eventually(m.t, "the port of "+m.addr+" free", func() bool {
		var err error
		l, err = net.Listen("tcp", m.addr)
		return err == nil
	})
	m.srv = &http.Server{Handler: m.handler, ReadHeaderTimeout: 5 * time.Second}
	go m.srv.Serve(l)
}

// stop ends the machine as a graceful shutdown does: requests in flight
// are answered, then its port refuses connections.
func (m *fleetMachine) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = m.srv.Shutdown(ctx)
}

// fleetRollout is web with a stable served by machines and the steps of
// rolloutYAML.
func fleetRollout(machines []*fleetMachine) []byte {
	urls := make([]string, len(machines))
	for i, m := range machines {
		urls[i] = fmt.Sprintf("%q", m.url())
	}
	one := rolloutYAML("http://one.invalid", "1s")
	return []byte(strings.Replace(string(one), `stable: {url: "http://one.invalid", version: v1}`,
		"stable: {urls: ["+strings.Join(urls, ", ")+"], version: v1}", 1))
}

// stableHealth is the health reason of the stable in the rollout's live
// metrics, "" while it has none.
func stableHealth(t *testing.T, c controlapi.Backend) string {
	v, err := c.Rollout(context.Background(), "web")
	if err != nil || v.Live == nil {
		return ""
	}
	return v.Live.Stable.HealthReason
}

// TestFleetServesEveryRequestWithAMachineStopped: a stable of three
// machines under load loses one; every request is still answered, the
// machine is out of rotation and named in the stable's health, and once
// it starts again on the same port it is back in rotation and serves.
func TestFleetServesEveryRequestWithAMachineStopped(t *testing.T) {
	machines := []*fleetMachine{startMachine(t, "v1"), startMachine(t, "v1"), startMachine(t, "v1")}
	d, c := startDaemon(t, t.TempDir(), fleetRollout(machines))
	addr, _ := d.ProxyAddr("web")
	stopLoad := startLoad(t, addr, 150)
	nettest.Eventually(t, "every machine serving", func() bool {
		return machines[0].served.Load() > 0 && machines[1].served.Load() > 0 && machines[2].served.Load() > 0
	})

	machines[1].stop()
	nettest.Eventually(t, "machine 1 out of rotation", func() bool {
		return strings.Contains(stableHealth(t, c), "2 of 3 machines in rotation; out of rotation: "+machines[1].url())
	})
	before := [...]int64{machines[0].served.Load(), machines[2].served.Load()}
	time.Sleep(500 * time.Millisecond)
	if machines[0].served.Load() == before[0] || machines[2].served.Load() == before[1] {
		t.Errorf("the machines in rotation served no request in 500ms")
	}

	machines[1].start()
	nettest.Eventually(t, "machine 1 back in rotation", func() bool { return stableHealth(t, c) == "all 3 machines in rotation" })
	back := machines[1].served.Load()
	nettest.Eventually(t, "machine 1 serving again", func() bool { return machines[1].served.Load() > back+10 })
	checkAllAnswered(t, stopLoad())
	if st := waitFor(t, c, time.Second, "idle", phaseIs(v1alpha1.PhaseIdle)); len(st.Stable.URLs) != 3 {
		t.Errorf("stable %+v, want its three machines", st.Stable)
	}
}

// TestFleetCanaryPromotedAndKeptAfterRestart rolls out a canary of two
// machines, deployed with their URLs over the control API: both serve
// it, and once it is promoted the status keeps both, so the restarted
// daemon serves the new stable from both machines again.
func TestFleetCanaryPromotedAndKeptAfterRestart(t *testing.T) {
	stable := app(t, sampleapp.Config{Version: "v1"})
	canaries := []*fleetMachine{startMachine(t, "v2"), startMachine(t, "v2")}
	urls := []string{canaries[0].url(), canaries[1].url()}
	dir := t.TempDir()
	doc := rolloutYAML(stable.URL, "1s")
	d, c := startDaemon(t, dir, doc)
	addr, _ := d.ProxyAddr("web")
	stopLoad := startLoad(t, addr, 150)
	if _, err := c.Submit(context.Background(), "web", rollout.Command{Kind: rollout.CommandDeploy, Actor: "test",
		Canary: &v1alpha1.VersionRef{Version: "v2", URLs: urls}}); err != nil {
		t.Fatal(err)
	}
	st := waitFor(t, c, 40*time.Second, "Succeeded", phaseIs(v1alpha1.PhaseSucceeded))
	checkAllAnswered(t, stopLoad())
	if st.Stable.Version != "v2" || !slices.Equal(st.Stable.URLs, urls) {
		t.Fatalf("stable after promotion %+v, want v2 on %v", st.Stable, urls)
	}
	if err := d.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}

	d2, c2 := startDaemon(t, dir, doc)
	v, err := c2.Rollout(context.Background(), "web")
	if err != nil || !slices.Equal(v.Status.Stable.URLs, urls) {
		t.Fatalf("stable after a restart %+v (%v), want v2 on %v", v.Status.Stable, err, urls)
	}
	addr, _ = d2.ProxyAddr("web")
	before := [...]int64{canaries[0].served.Load(), canaries[1].served.Load()}
	if seen := versionsServed(t, addr, 40); seen["v2"] != 40 {
		t.Errorf("after a restart the proxy served %v, want only v2", seen)
	}
	if canaries[0].served.Load()-before[0] != 20 || canaries[1].served.Load()-before[1] != 20 {
		t.Errorf("after a restart the machines served %d and %d of 40 requests, want 20 each",
			canaries[0].served.Load()-before[0], canaries[1].served.Load()-before[1])
	}
}

// TestFleetRefusesBadMachines: url beside urls, a bad entry and a
// machine listed twice are refused at start, naming the file, the line,
// the field and the reason.
func TestFleetRefusesBadMachines(t *testing.T) {
	for _, tc := range []struct{ stable, want string }{
		{`{url: "http://127.0.0.1:1", urls: ["http://127.0.0.1:2"]}`, "web.yaml:8:5: spec.service.stable: set one of url, urls and process, not two"},
		{`{urls: ["http://127.0.0.1:1", "127.0.0.1:2"]}`, "web.yaml:8:43: spec.service.stable.urls[1]: is not a valid URL"},
		{`{urls: ["http://127.0.0.1:1", "http://127.0.0.1:1"]}`, `web.yaml:8:43: spec.service.stable.urls[1]: "http://127.0.0.1:1" is listed already, as spec.service.stable.urls[0]`},
	} {
		doc := strings.Replace(string(rolloutYAML("http://one.invalid", "1s")), `{url: "http://one.invalid", version: v1}`, tc.stable, 1)
		_, err := Start(context.Background(), Config{Sources: []Source{{File: "web.yaml", Data: []byte(doc)}},
			StateDir: t.TempDir(), APIAddr: "127.0.0.1:0"})
		var cfgErr *ConfigError
		if !errors.As(err, &cfgErr) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("stable %s: %v, want a ConfigError saying %q", tc.stable, err, tc.want)
		}
	}
}

// fleetService is a service whose stable is served by the machines at
// urls, with fast health checks; extra goes inside its flow map.
func fleetService(listen string, urls []string, extra string) string {
	return fmt.Sprintf("{listen: %s, stable: {urls: [%s], version: v1}, healthCheck: {interval: 100ms, timeout: 2s}%s}",
		listen, strings.Join(urls, ", "), extra)
}

// TestReloadOfTheStableMachines adds a machine to the stable: refused
// while a canary is in flight, as any change of service.stable is, and
// installed once the rollout has ended, the new machine serving.
func TestReloadOfTheStableMachines(t *testing.T) {
	m := []*fleetMachine{startMachine(t, "v1"), startMachine(t, "v1"), startMachine(t, "v1")}
	canary := app(t, sampleapp.Config{Version: "v2"})
	listen := freeAddr(t)
	f := &rolloutFiles{}
	f.set("web.yaml", rolloutDoc("web", fleetService(listen, []string{m[0].url(), m[1].url()}, ""), holdAtFivePercent))
	d, c := startReloadable(t, t.TempDir(), f)
	deployV2(t, c, canary.URL)
	waitFor(t, c, 10*time.Second, "5%", func(st v1alpha1.RolloutStatus) bool { return st.CanaryWeight > 0 })

	three := []string{m[0].url(), m[1].url(), m[2].url()}
	f.set("web.yaml", rolloutDoc("web", fleetService(listen, three, ""), holdAtFivePercent))
	_, err := d.Reload(context.Background())
	for _, want := range []string{"web.yaml", `rollout "web"`, "spec.service.stable", "in flight", "v1 (" + strings.Join(three, ", ") + ")"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("reload: %v, want a refusal saying %q", err, want)
		}
	}
	if _, err := c.Submit(context.Background(), "web", rollout.Command{Kind: rollout.CommandAbort}); err != nil {
		t.Fatal(err)
	}
	reload(t, d)
	st := waitFor(t, c, 5*time.Second, "the third machine installed", func(st v1alpha1.RolloutStatus) bool { return len(st.Stable.URLs) == 3 })
	if !slices.Equal(st.Stable.URLs, three) {
		t.Errorf("stable machines %v, want %v", st.Stable.URLs, three)
	}
	nettest.Eventually(t, "the third machine serving", func() bool {
		_, _, _ = answer(listen, "", "/")
		return m[2].served.Load() > 0
	})
}

// TestReloadedCanaryMachinesAreANewCanary moves the file's canary to
// other machines under the same label: a new canary, as a new url is.
func TestReloadedCanaryMachinesAreANewCanary(t *testing.T) {
	stable := app(t, sampleapp.Config{Version: "v1"})
	m := []*fleetMachine{startMachine(t, "v2"), startMachine(t, "v2"), startMachine(t, "v2")}
	canaryOn := func(urls ...string) string {
		return fmt.Sprintf(", canary: {urls: [%s], version: v2}", strings.Join(urls, ", "))
	}
	f := &rolloutFiles{}
	f.set("web.yaml", rolloutDoc("web", urlService("127.0.0.1:0", stable.URL, canaryOn(m[0].url(), m[1].url())), holdAtFivePercent))
	d, c := startReloadable(t, t.TempDir(), f)
	waitFor(t, c, 10*time.Second, "the canary at 5%", func(st v1alpha1.RolloutStatus) bool {
		return st.CanaryWeight > 0 && st.Canary != nil && slices.Equal(st.Canary.URLs, []string{m[0].url(), m[1].url()})
	})
	f.set("web.yaml", rolloutDoc("web", urlService("127.0.0.1:0", stable.URL, canaryOn(m[0].url(), m[2].url())), holdAtFivePercent))
	reload(t, d)
	waitFor(t, c, 10*time.Second, "the canary on machines 0 and 2", func(st v1alpha1.RolloutStatus) bool {
		return st.CanaryWeight > 0 && st.Canary != nil && slices.Equal(st.Canary.URLs, []string{m[0].url(), m[2].url()})
	})
}
