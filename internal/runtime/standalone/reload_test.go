package standalone

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/client"
	"github.com/pipit-dev/pipit/internal/controlapi"
	"github.com/pipit-dev/pipit/internal/rollout"
	"github.com/pipit-dev/pipit/internal/sampleapp"
	"github.com/pipit-dev/pipit/internal/spec"
	"github.com/pipit-dev/pipit/internal/testenv/nettest"
)

// rolloutFiles are the rollout files of a daemon a test reloads: the
// test edits them between reloads.
type rolloutFiles struct {
	mu    sync.Mutex
	names []string
	docs  map[string]string
}

// set writes the file name; an empty doc removes it.
func (f *rolloutFiles) set(name, doc string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.docs == nil {
		f.docs = map[string]string{}
	}
	if !slices.Contains(f.names, name) {
		f.names = append(f.names, name)
	}
	f.docs[name] = doc
}

func (f *rolloutFiles) read() ([]Source, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Source
	for _, name := range f.names {
		if doc := f.docs[name]; doc != "" {
			out = append(out, Source{File: name, Data: []byte(doc)})
		}
	}
	return out, nil
}

// startReloadable starts a daemon on f's files, which Reload reads again.
func startReloadable(t *testing.T, dir string, f *rolloutFiles) (*Daemon, *client.HTTP) {
	t.Helper()
	sources, _ := f.read()
	return startConfig(t, Config{Sources: sources, Read: f.read, StateDir: dir})
}

// reload reloads d and fails the test if it was refused.
func reload(t *testing.T, d *Daemon) controlapi.ReloadResult {
	t.Helper()
	res, err := d.Reload(context.Background())
	if err != nil {
		t.Fatalf("reload: %v", err)
	}
	return res
}

// rolloutDoc is a rollout file of one rollout: its service as a YAML flow
// map and the rest of its spec, indented under spec.
func rolloutDoc(name, service, rest string) string {
	return fmt.Sprintf("apiVersion: pipit.dev/v1alpha1\nkind: Rollout\nmetadata: {name: %s}\nspec:\n  service: %s\n%s", name, service, rest)
}

// urlService is a service of fixed URLs with fast health checks; extra
// goes inside its flow map.
func urlService(listen, stableURL, extra string) string {
	return fmt.Sprintf("{listen: %s, stable: {url: %q, version: v1}, healthCheck: {interval: 100ms, timeout: 2s}%s}", listen, stableURL, extra)
}

// holdAtFivePercent sets 5% and waits for a person; then 50% and waits
// again.
const holdAtFivePercent = "  strategy: {steps: [{setWeight: 5}, {pause: {}}, {setWeight: 50}, {pause: {}}]}\n"

// answer sends one request to addr with host and path, and returns the
// status and the version that answered; err is a failed request.
func answer(addr, host, path string) (int, string, error) {
	req, err := http.NewRequest(http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		return 0, "", err
	}
	req.Host = host
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("X-Pipit-Version"), nil
}

// servedBy waits until addr answers from version for host and path (the
// sample app answers 404 but for /).
func servedBy(t *testing.T, addr, host, path, version string) {
	t.Helper()
	nettest.Eventually(t, fmt.Sprintf("%s%s on %s answered by %s", host, path, addr, version), func() bool {
		code, v, err := answer(addr, host, path)
		return err == nil && code != 0 && v == version
	})
}

// reasons are the reasons of a rollout's events with the actor given.
func reasons(t *testing.T, c controlapi.Backend, name, actor string) []string {
	t.Helper()
	events, err := c.Events(context.Background(), name, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range events {
		if e.Actor == actor {
			out = append(out, e.Reason)
		}
	}
	return out
}

// TestReloadAddsAndRemovesRollouts adds a rollout on a listener of its
// own and one on a shared listener, then removes both: the first's
// listener closes, the second's route goes while its neighbour is still
// served. Their state stays: added back, a rollout resumes where it was.
func TestReloadAddsAndRemovesRollouts(t *testing.T) {
	shop, blog, api := app(t, sampleapp.Config{Version: "shop-v1"}), app(t, sampleapp.Config{Version: "blog-v1"}), app(t, sampleapp.Config{Version: "api-v1"})
	shared, own := freeAddr(t), freeAddr(t)
	f := &rolloutFiles{}
	f.set("shop.yaml", rolloutDoc("shop", urlService(shared, shop.URL, ", host: shop.example"), holdAtFivePercent))
	d, c := startReloadable(t, t.TempDir(), f)
	servedBy(t, shared, "shop.example", "/", "v1")

	f.set("blog.yaml", rolloutDoc("blog", urlService(shared, blog.URL, ", pathPrefix: /blog"), holdAtFivePercent))
	f.set("api.yaml", rolloutDoc("api", urlService(own, api.URL, ""), holdAtFivePercent))
	res := reload(t, d)
	if !slices.Equal(res.Added, []string{"blog", "api"}) || len(res.Removed)+len(res.Changed) != 0 {
		t.Fatalf("reload: %+v, want blog and api added", res)
	}
	servedBy(t, shared, "other", "/blog/x", "v1")
	servedBy(t, own, "", "/", "v1")
	if _, err := d.Submit(context.Background(), "api", deployCommand(v1alpha1.VersionRef{Version: "v2", URL: shop.URL}, "test")); err != nil {
		t.Fatal(err)
	}

	f.set("blog.yaml", "")
	f.set("api.yaml", "")
	if res := reload(t, d); !slices.Equal(res.Removed, []string{"blog", "api"}) {
		t.Fatalf("reload: %+v, want blog and api removed", res)
	}
	if code, v, err := answer(shared, "other", "/blog/x"); err != nil || code != http.StatusNotFound || v != "" {
		t.Errorf("removed route on the shared listener: %d from %q (%v), want the listener's 404", code, v, err)
	}
	servedBy(t, shared, "shop.example", "/", "v1")
	if _, _, err := answer(own, "", "/"); err == nil {
		t.Error("the listener of a removed rollout still answers")
	}
	if _, err := c.Rollout(context.Background(), "api"); !errors.Is(err, controlapi.ErrNotFound) {
		t.Errorf("removed rollout still listed: %v", err)
	}

	f.set("api.yaml", rolloutDoc("api", urlService(own, api.URL, ""), holdAtFivePercent))
	reload(t, d)
	v, err := c.Rollout(context.Background(), "api")
	if err != nil || v.Status.Canary == nil || v.Status.Canary.Version != "v2" || v.Status.Phase == v1alpha1.PhaseIdle {
		t.Fatalf("added back: %+v %v, want its canary v2 resumed", v.Status, err)
	}
	if got := reasons(t, c, "api", reloadActor); !slices.Equal(got, []string{"Reloaded", "Reloaded", "Reloaded"}) {
		t.Errorf("reload events of api: %v, want added, removed, added back", got)
	}
}

// TestReloadedPlanAppliesFromTheNextStep changes the plan while the
// rollout waits at its second step, a pause for a person: the index is
// kept and the open gate stays open; once approved, the next step is the
// new plan's.
func TestReloadedPlanAppliesFromTheNextStep(t *testing.T) {
	stable, canary := app(t, sampleapp.Config{Version: "v1"}), app(t, sampleapp.Config{Version: "v2"})
	f := &rolloutFiles{}
	f.set("web.yaml", rolloutDoc("web", urlService("127.0.0.1:0", stable.URL, ""), holdAtFivePercent))
	d, c := startReloadable(t, t.TempDir(), f)
	deployV2(t, c, canary.URL)
	waitFor(t, c, 10*time.Second, "the pause at 5%", func(st v1alpha1.RolloutStatus) bool {
		return st.CurrentStep == 1 && st.Phase == v1alpha1.PhaseAwaitingDecision
	})

	f.set("web.yaml", rolloutDoc("web", urlService("127.0.0.1:0", stable.URL, ""),
		"  strategy: {steps: [{setWeight: 5}, {pause: {duration: 10ms}}, {setWeight: 30}, {pause: {}}]}\n"))
	res := reload(t, d)
	if len(res.Changed) != 1 || !slices.Equal(res.Changed[0].Fields, []string{"spec.strategy"}) {
		t.Fatalf("reload: %+v, want web's strategy changed", res)
	}
	// The gate the old pause opened waits for a person still: the new
	// plan applies from the next step.
	st := waitFor(t, c, 2*time.Second, "still at the gate", phaseIs(v1alpha1.PhaseAwaitingDecision))
	if st.CurrentStep != 1 || st.CanaryWeight != v1alpha1.PercentOf(5) {
		t.Fatalf("after the reload: step %d at %s, want step 1 at 5%%", st.CurrentStep, st.CanaryWeight)
	}
	if _, err := c.Submit(context.Background(), "web", approveCommand()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, c, 10*time.Second, "the new plan's 30%", func(st v1alpha1.RolloutStatus) bool {
		return st.CurrentStep == 3 && st.CanaryWeight == v1alpha1.PercentOf(30)
	})
	if got := reasons(t, c, "web", reloadActor); !slices.Equal(got, []string{"Reloaded"}) {
		t.Errorf("reload events: %v, want one Reloaded", got)
	}
}

// TestReloadedPlanWithFewerStepsGoesOnToPromotion shortens the plan
// below the step the rollout is on: it has done all the new plan's steps
// and is promoted.
func TestReloadedPlanWithFewerStepsGoesOnToPromotion(t *testing.T) {
	stable, canary := app(t, sampleapp.Config{Version: "v1"}), app(t, sampleapp.Config{Version: "v2"})
	f := &rolloutFiles{}
	f.set("web.yaml", rolloutDoc("web", urlService("127.0.0.1:0", stable.URL, ""),
		"  strategy: {steps: [{setWeight: 5}, {setWeight: 20}, {setWeight: 50}, {pause: {duration: 1h}}]}\n"))
	d, c := startReloadable(t, t.TempDir(), f)
	deployV2(t, c, canary.URL)
	waitFor(t, c, 10*time.Second, "the pause at 50%", func(st v1alpha1.RolloutStatus) bool { return st.CurrentStep == 3 })

	f.set("web.yaml", rolloutDoc("web", urlService("127.0.0.1:0", stable.URL, ""), "  strategy: {steps: [{setWeight: 10}]}\n"))
	reload(t, d)
	st := waitFor(t, c, 10*time.Second, "the promotion", phaseIs(v1alpha1.PhaseSucceeded))
	if st.Stable.Version != "v2" {
		t.Errorf("promoted %s, want v2", st.Stable.Version)
	}
}

func approveCommand() rollout.Command {
	return rollout.Command{Kind: rollout.CommandApprove, Actor: "test"}
}

// canaryRule sends requests with the header canary: true to the canary.
const canaryRule = ", traffic: {rules: [{name: force, to: canary, headers: {canary: {exact: \"true\"}}}]}"

// TestReloadedTrafficRulesApplyToNewRequests adds a rule while a canary
// gets 5%: the next requests follow it, through the same listener.
func TestReloadedTrafficRulesApplyToNewRequests(t *testing.T) {
	stable, canary := app(t, sampleapp.Config{Version: "v1"}), app(t, sampleapp.Config{Version: "v2"})
	listen := freeAddr(t)
	f := &rolloutFiles{}
	f.set("web.yaml", rolloutDoc("web", urlService(listen, stable.URL, ""), holdAtFivePercent))
	d, c := startReloadable(t, t.TempDir(), f)
	deployV2(t, c, canary.URL)
	waitFor(t, c, 10*time.Second, "5%", func(st v1alpha1.RolloutStatus) bool { return st.CanaryWeight > 0 })
	forced := func() int {
		n := 0
		for range 20 {
			if get(t, listen, map[string]string{"canary": "true"}) == "v2" {
				n++
			}
		}
		return n
	}
	if n := forced(); n == 20 {
		t.Fatal("every request went to the canary before the rule")
	}
	f.set("web.yaml", rolloutDoc("web", urlService(listen, stable.URL, canaryRule), holdAtFivePercent))
	res := reload(t, d)
	if len(res.Changed) != 1 || !slices.Equal(res.Changed[0].Fields, []string{"spec.service.traffic"}) {
		t.Fatalf("reload: %+v", res)
	}
	if n := forced(); n != 20 {
		t.Errorf("%d of 20 requests with the rule's header went to the canary, want all", n)
	}
	if st := waitFor(t, c, time.Second, "the same step", phaseIs(v1alpha1.PhaseAwaitingDecision)); st.CanaryWeight != v1alpha1.PercentOf(5) {
		t.Errorf("weight %s after the reload, want 5%% kept", st.CanaryWeight)
	}
}

// TestReloadMovesARolloutToAnotherListener changes service.listen: the
// new address serves the rollout, and the old one, used by nobody else,
// closes.
func TestReloadMovesARolloutToAnotherListener(t *testing.T) {
	stable := app(t, sampleapp.Config{Version: "v1"})
	from, to := freeAddr(t), freeAddr(t)
	f := &rolloutFiles{}
	f.set("web.yaml", rolloutDoc("web", urlService(from, stable.URL, ""), holdAtFivePercent))
	d, c := startReloadable(t, t.TempDir(), f)
	servedBy(t, from, "", "/", "v1")
	f.set("web.yaml", rolloutDoc("web", urlService(to, stable.URL, ""), holdAtFivePercent))
	reload(t, d)
	servedBy(t, to, "", "/", "v1")
	if _, _, err := answer(from, "", "/"); err == nil {
		t.Error("the old address still answers")
	}
	if v, err := c.Rollout(context.Background(), "web"); err != nil || v.Listen != to {
		t.Errorf("listed on %q (%v), want %s", v.Listen, err, to)
	}
}

// TestReloadRefusesAStableChangedInFlight changes service.stable while a
// canary is in flight, with a new rollout beside it: the reload is
// refused naming the file, the rollout and the field, and nothing
// changes, the new rollout included.
func TestReloadRefusesAStableChangedInFlight(t *testing.T) {
	stable, other, canary := app(t, sampleapp.Config{Version: "v1"}), app(t, sampleapp.Config{Version: "v1b"}), app(t, sampleapp.Config{Version: "v2"})
	listen := freeAddr(t)
	f := &rolloutFiles{}
	f.set("web.yaml", rolloutDoc("web", urlService(listen, stable.URL, ""), holdAtFivePercent))
	d, c := startReloadable(t, t.TempDir(), f)
	deployV2(t, c, canary.URL)
	waitFor(t, c, 10*time.Second, "5%", func(st v1alpha1.RolloutStatus) bool { return st.CanaryWeight > 0 })

	f.set("web.yaml", rolloutDoc("web", urlService(listen, other.URL, ""), holdAtFivePercent))
	f.set("api.yaml", rolloutDoc("api", urlService("127.0.0.1:0", other.URL, ""), holdAtFivePercent))
	_, err := d.Reload(context.Background())
	var cfgErr *ConfigError
	if !errors.As(err, &cfgErr) || !errors.Is(err, controlapi.ErrInvalidConfig) {
		t.Fatalf("reload: %v, want a ConfigError", err)
	}
	for _, want := range []string{"web.yaml", `rollout "web"`, "spec.service.stable", "in flight"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("refusal %q does not say %q", err, want)
		}
	}
	if _, err := c.Rollout(context.Background(), "api"); !errors.Is(err, controlapi.ErrNotFound) {
		t.Errorf("the rollout beside it was added: %v", err)
	}
	st := waitFor(t, c, time.Second, "the same rollout", phaseIs(v1alpha1.PhaseAwaitingDecision))
	if st.Stable.URL != stable.URL || st.CanaryWeight != v1alpha1.PercentOf(5) {
		t.Errorf("after the refusal: stable %s at %s, want %s at 5%%", st.Stable.URL, st.CanaryWeight, stable.URL)
	}
	if got := reasons(t, c, "web", reloadActor); len(got) != 0 {
		t.Errorf("a refused reload left events: %v", got)
	}
}

// TestReloadInstallsAStableChangedWhileIdle changes service.stable with
// no canary in flight: it is installed as the new stable, as the engine
// installs a first version, and the proxy serves it.
func TestReloadInstallsAStableChangedWhileIdle(t *testing.T) {
	stable, next := app(t, sampleapp.Config{Version: "v1"}), app(t, sampleapp.Config{Version: "v1b"})
	listen := freeAddr(t)
	f := &rolloutFiles{}
	f.set("web.yaml", rolloutDoc("web", urlService(listen, stable.URL, ""), holdAtFivePercent))
	d, c := startReloadable(t, t.TempDir(), f)
	servedBy(t, listen, "", "/", "v1")
	f.set("web.yaml", rolloutDoc("web", strings.Replace(urlService(listen, next.URL, ""), "version: v1", "version: v1b", 1), holdAtFivePercent))
	reload(t, d)
	servedBy(t, listen, "", "/", "v1b")
	if st := waitFor(t, c, time.Second, "idle", phaseIs(v1alpha1.PhaseIdle)); st.Stable.Version != "v1b" {
		t.Errorf("stable %s, want v1b", st.Stable.Version)
	}
	if got := reasons(t, c, "web", "rollout file"); !slices.Equal(got, []string{"Installed"}) {
		t.Errorf("events by the rollout file: %v, want Installed", got)
	}
	if got := reasons(t, c, "web", reloadActor); !slices.Equal(got, []string{"Reloaded"}) {
		t.Errorf("events by the reload: %v, want Reloaded", got)
	}
}

// TestReloadedCanaryQueuesADeploy names a new canary in the file: the
// reload rolls it out as a restart would.
func TestReloadedCanaryQueuesADeploy(t *testing.T) {
	stable, canary := app(t, sampleapp.Config{Version: "v1"}), app(t, sampleapp.Config{Version: "v2"})
	f := &rolloutFiles{}
	f.set("web.yaml", rolloutDoc("web", urlService("127.0.0.1:0", stable.URL, ""), holdAtFivePercent))
	d, c := startReloadable(t, t.TempDir(), f)
	f.set("web.yaml", rolloutDoc("web", urlService("127.0.0.1:0", stable.URL, fmt.Sprintf(", canary: {url: %q, version: v2}", canary.URL)), holdAtFivePercent))
	reload(t, d)
	st := waitFor(t, c, 10*time.Second, "the canary at 5%", func(st v1alpha1.RolloutStatus) bool { return st.CanaryWeight > 0 })
	if st.Canary == nil || st.Canary.Version != "v2" {
		t.Errorf("canary %+v, want v2", st.Canary)
	}
}

// TestReloadKeepsTheProcessesOfAProcessRollout changes the plan and the
// traffic rules of a process rollout, which rebuilds its proxy: the same
// processes serve on, none restarted.
func TestReloadKeepsTheProcessesOfAProcessRollout(t *testing.T) {
	doc := string(processRolloutYAML(t, "1h"))
	f := &rolloutFiles{}
	f.set("web.yaml", doc)
	d, _ := startReloadable(t, t.TempDir(), f)
	addr, _ := d.ProxyAddr("web")
	waitServing(t, addr, "v1")
	p := d.rollout("web").process
	before := pids(p, "v1")
	if len(before) != 2 {
		t.Fatalf("v1 runs as %v, want 2 replicas", before)
	}
	doc = strings.Replace(doc, "    listen: 127.0.0.1:0\n", "    listen: 127.0.0.1:0\n    traffic: {rules: [{name: force, to: canary, headers: {canary: {exact: \"true\"}}}]}\n", 1)
	doc = strings.Replace(doc, "    - setWeight: 50\n", "    - setWeight: 40\n", 1)
	f.set("web.yaml", doc)
	res := reload(t, d)
	if len(res.Changed) != 1 || !slices.Equal(res.Changed[0].Fields, []string{"spec.service.traffic", "spec.strategy"}) {
		t.Fatalf("reload: %+v", res)
	}
	waitServing(t, addr, "v1")
	if d.rollout("web").process != p {
		t.Fatal("the reload made a new process target")
	}
	if after := pids(p, "v1"); !slices.Equal(after, before) {
		t.Errorf("v1's processes went from %v to %v: restarted by a reload that did not change them", before, after)
	}
	for _, pid := range before {
		if !alive(pid) {
			t.Errorf("process %d stopped", pid)
		}
	}
}

// TestReloadOfAnInvalidFileChangesNothing reloads a file that does not
// validate: the refusal is what pipit validate prints for it, and the
// rollouts run on as they were.
func TestReloadOfAnInvalidFileChangesNothing(t *testing.T) {
	stable := app(t, sampleapp.Config{Version: "v1"})
	listen := freeAddr(t)
	path := filepath.Join(t.TempDir(), "web.yaml")
	f := &rolloutFiles{}
	f.set(path, rolloutDoc("web", urlService(listen, stable.URL, ""), holdAtFivePercent))
	d, c := startReloadable(t, t.TempDir(), f)
	bad := rolloutDoc("web", urlService(listen, stable.URL, ", hostt: x"), "  strategy: {steps: [{setWeight: 500}]}\n")
	if err := os.WriteFile(path, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	_, loadErr := spec.ParseFile(path, []byte(bad))
	var want spec.Errors
	if !errors.As(loadErr, &want) {
		t.Fatalf("spec.ParseFile: %v, want spec.Errors", loadErr)
	}
	f.set(path, bad)
	_, err := d.Reload(context.Background())
	if !errors.Is(err, controlapi.ErrInvalidConfig) || err.Error() != want.Error() {
		t.Fatalf("reload: %v\nwant what pipit validate prints:\n%s", err, want.Error())
	}
	servedBy(t, listen, "", "/", "v1")
	if v, err := c.Rollout(context.Background(), "web"); err != nil || v.Listen != listen {
		t.Errorf("after the refusal: %+v %v", v, err)
	}
}

// TestReloadsFailNoRequest sends requests without pause through a shared
// listener while reloads add a rollout beside it, change its traffic
// rules (a new proxy), remove the other rollout, and change the
// listener's limits (a new server on the same socket): not one request
// fails.
func TestReloadsFailNoRequest(t *testing.T) {
	shop, blog := app(t, sampleapp.Config{Version: "shop-v1"}), app(t, sampleapp.Config{Version: "blog-v1"})
	shared := freeAddr(t)
	shopDoc := func(extra string) string {
		return rolloutDoc("shop", urlService(shared, shop.URL, ", host: shop.example"+extra), holdAtFivePercent)
	}
	f := &rolloutFiles{}
	f.set("shop.yaml", shopDoc(""))
	d, _ := startReloadable(t, t.TempDir(), f)
	servedBy(t, shared, "shop.example", "/", "v1")

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var sent, failed int
	var firstFailure string
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				code, v, err := answer(shared, "shop.example", "/")
				mu.Lock()
				sent++
				if err != nil || code != http.StatusOK || v != "v1" {
					if failed++; firstFailure == "" {
						firstFailure = fmt.Sprintf("%d from %q: %v", code, v, err)
					}
				}
				mu.Unlock()
			}
		})
	}
	steps := []func(){
		func() {
			f.set("blog.yaml", rolloutDoc("blog", urlService(shared, blog.URL, ", pathPrefix: /blog"), holdAtFivePercent))
		},
		func() { f.set("shop.yaml", shopDoc(canaryRule)) },
		func() { f.set("blog.yaml", "") },
		func() { f.set("shop.yaml", shopDoc(canaryRule+", limits: {maxConnections: 500}")) },
	}
	for _, step := range steps {
		time.Sleep(200 * time.Millisecond)
		step()
		reload(t, d)
	}
	time.Sleep(200 * time.Millisecond)
	close(stop)
	wg.Wait()
	if sent < 100 || failed > 0 {
		t.Errorf("%d of %d requests failed across the reloads, the first: %s", failed, sent, firstFailure)
	}
}

// TestReloadStopsTheProcessesOfARemovedRollout removes a process rollout
// beside another: its processes stop, its listener closes, the other
// serves on.
func TestReloadStopsTheProcessesOfARemovedRollout(t *testing.T) {
	stable := app(t, sampleapp.Config{Version: "v1"})
	listen := freeAddr(t)
	f := &rolloutFiles{}
	f.set("web.yaml", string(processRolloutYAML(t, "1h")))
	f.set("api.yaml", rolloutDoc("api", urlService(listen, stable.URL, ""), holdAtFivePercent))
	d, _ := startReloadable(t, t.TempDir(), f)
	addr, _ := d.ProxyAddr("web")
	waitServing(t, addr, "v1")
	running := pids(d.rollout("web").process, "v1")
	if len(running) != 2 {
		t.Fatalf("v1 runs as %v, want 2 replicas", running)
	}
	f.set("web.yaml", "")
	if res := reload(t, d); !slices.Equal(res.Removed, []string{"web"}) {
		t.Fatalf("reload: %+v", res)
	}
	for _, pid := range running {
		if alive(pid) {
			t.Errorf("process %d of the removed rollout still runs", pid)
		}
	}
	if _, _, err := answer(addr, "", "/"); err == nil {
		t.Error("the removed rollout's listener still answers")
	}
	servedBy(t, listen, "", "/", "v1")
}

// TestChangedGoalsRebuildTheProxy: the proxy counts the goals, so a
// change of spec.analysis.goals rebuilds it.
func TestChangedGoalsRebuildTheProxy(t *testing.T) {
	a := &v1alpha1.Rollout{Spec: v1alpha1.RolloutSpec{Service: &v1alpha1.ServiceSpec{},
		Analysis: &v1alpha1.AnalysisSpec{Goals: []v1alpha1.Goal{{Name: "buy", Path: &v1alpha1.StringMatch{Exact: "/buy"}}}}}}
	b := a.DeepCopy()
	b.Spec.Analysis.Goals[0].Path.Exact = "/checkout"
	fields := changedFields(a, b)
	if !slices.Contains(fields, "spec.analysis.goals") || !slices.Contains(planeFields, "spec.analysis.goals") {
		t.Errorf("changed fields %v; the proxy is rebuilt for %v", fields, planeFields)
	}
	if fields := changedFields(a, &v1alpha1.Rollout{Spec: v1alpha1.RolloutSpec{Service: &v1alpha1.ServiceSpec{}}}); !slices.Contains(fields, "spec.analysis.goals") {
		t.Errorf("removing the analysis changes %v", fields)
	}
}
