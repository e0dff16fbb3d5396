package standalone

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/client"
	"github.com/pipit-dev/pipit/internal/controlapi"
	"github.com/pipit-dev/pipit/internal/flag"
	"github.com/pipit-dev/pipit/internal/flag/ofreptest"
	"github.com/pipit-dev/pipit/internal/sampleapp"
)

// startFlagReloadable starts a daemon serving flags over OFREP on f's
// files, which Reload reads again, and returns the users of flag
// new-checkout.
func startFlagReloadable(t *testing.T, f *rolloutFiles) (*Daemon, *client.HTTP, *ofreptest.Users) {
	t.Helper()
	dir := t.TempDir()
	sources, _ := f.read()
	d, c := startConfig(t, Config{Sources: sources, Read: f.read, StateDir: dir, OFREPAddr: "127.0.0.1:0"})
	return d, c, ofrepUsers(t, d, dir)
}

// variantsOf asks the flag of each of u's users.
func variantsOf(t *testing.T, u *ofreptest.Users) map[int]string {
	t.Helper()
	out := map[int]string{}
	for i := range u.N {
		a, err := u.Evaluate(i)
		if err != nil || a.ErrorCode != "" {
			t.Fatalf("user %d: %+v %v", i, a, err)
		}
		out[i] = a.Variant
	}
	return out
}

// refused reloads d, and fails the test unless the reload is refused as
// a *ConfigError saying all of want.
func refused(t *testing.T, d *Daemon, want ...string) {
	t.Helper()
	_, err := d.Reload(context.Background())
	var cfgErr *ConfigError
	if !errors.As(err, &cfgErr) {
		t.Fatalf("reload: %v, want a ConfigError", err)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("refusal %q does not say %q", err, w)
		}
	}
}

// liveFlag is the flag rollout web serves now.
func liveFlag(d *Daemon) *flag.Live { return d.rollout("web").dataPlane().flag }

// toThirtyPercent is holdAtFivePercent going on to 30% instead of 50%.
const toThirtyPercent = "  strategy: {steps: [{setWeight: 5}, {pause: {}}, {setWeight: 30}, {pause: {}}]}\n"

// TestReloadAddsChangesAndRemovesAFlagRollout adds a flag rollout beside
// a service: it is served over OFREP at once. A new strategy mid-way
// keeps the flag and every user's variant, and its steps apply; a change
// of spec.flag in flight is refused; removed, the flag is not found, and
// its state stays.
func TestReloadAddsChangesAndRemovesAFlagRollout(t *testing.T) {
	api := app(t, sampleapp.Config{Version: "v1"})
	f := &rolloutFiles{}
	f.set("api.yaml", rolloutDoc("api", urlService("127.0.0.1:0", api.URL, ""), holdAtFivePercent))
	d, c, u := startFlagReloadable(t, f)
	ctx := context.Background()
	f.set("flag.yaml", flagHead+holdAtFivePercent)
	if res := reload(t, d); !slices.Equal(res.Added, []string{"web"}) || len(res.Changed)+len(res.Removed) != 0 {
		t.Fatalf("reload: %+v, want web added", res)
	}
	if v, err := c.Rollout(ctx, "web"); err != nil || v.Listen != u.Addr || v.Flag != "new-checkout" {
		t.Errorf("view %+v, %v; want flag new-checkout served on %s", v, err, u.Addr)
	}
	waitFor(t, c, 10*time.Second, "the pause at 5%", func(st v1alpha1.RolloutStatus) bool {
		return st.CurrentStep == 1 && st.Phase == v1alpha1.PhaseAwaitingDecision
	})
	live, before := liveFlag(d), variantsOf(t, u)

	f.set("flag.yaml", flagHead+toThirtyPercent)
	if res := reload(t, d); len(res.Changed) != 1 || !slices.Equal(res.Changed[0].Fields, []string{"spec.strategy"}) {
		t.Fatalf("reload: %+v, want web's strategy changed", res)
	}
	if liveFlag(d) != live {
		t.Error("a new strategy rebuilt the flag")
	}
	if after := variantsOf(t, u); !maps.Equal(before, after) {
		t.Error("users changed variant across a reload that did not change the flag")
	}
	if _, err := c.Submit(ctx, "web", approveCommand()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, c, 10*time.Second, "the new plan's 30%", func(st v1alpha1.RolloutStatus) bool {
		return st.CurrentStep == 3 && st.CanaryWeight == v1alpha1.PercentOf(30)
	})
	if on := countOf(variantsOf(t, u), "on"); on < 30 || on > 100 {
		t.Errorf("%d of 200 users have on at 30%%", on)
	}
	rebuildInFlight(t, d, u, f)
	refuseFlagChangeInFlight(t, d, f)

	f.set("flag.yaml", "")
	if res := reload(t, d); !slices.Equal(res.Removed, []string{"web"}) {
		t.Fatalf("reload: %+v, want web removed", res)
	}
	if a, err := u.Evaluate(0); err != nil || a.ErrorCode != flag.ErrFlagNotFound {
		t.Errorf("a removed flag: %+v %v, want %s", a, err, flag.ErrFlagNotFound)
	}
	if rec, err := d.db.Rollout(ctx, "web"); err != nil || rec.Status.CanaryWeight != v1alpha1.PercentOf(30) {
		t.Errorf("state of the removed rollout: %+v %v, want it kept at 30%%", rec.Status, err)
	}
}

// withGoal counts the goal purchase, which the flag counts.
const withGoal = "  analysis: {interval: 200ms, goals: [{name: purchase}]}\n"

// rebuildInFlight gives web, rolled out to 30%, a goal: the flag counts
// the goals, so it is rebuilt, given the weight before it is served, and
// every user keeps their variant.
func rebuildInFlight(t *testing.T, d *Daemon, u *ofreptest.Users, f *rolloutFiles) {
	t.Helper()
	live, before := liveFlag(d), variantsOf(t, u)
	f.set("flag.yaml", flagHead+toThirtyPercent+withGoal)
	if res := reload(t, d); len(res.Changed) != 1 || !slices.Contains(res.Changed[0].Fields, "spec.analysis.goals") {
		t.Fatalf("reload: %+v, want web's goals changed", res)
	}
	if liveFlag(d) == live || liveFlag(d).State().Weight != v1alpha1.PercentOf(30) {
		t.Errorf("after a new goal: flag %+v, want a new one at 30%%", liveFlag(d).State())
	}
	if after := variantsOf(t, u); !maps.Equal(before, after) {
		t.Error("users changed variant when the flag was rebuilt for a goal")
	}
}

// refuseFlagChangeInFlight adds a variant to web's flag, rolled out to
// 30%: the reload is refused, and the flag is served as it was.
func refuseFlagChangeInFlight(t *testing.T, d *Daemon, f *rolloutFiles) {
	t.Helper()
	live := liveFlag(d)
	f.set("flag.yaml", strings.Replace(flagHead, "{on: true, off: false}", "{on: true, off: false, beta: true}", 1)+toThirtyPercent+withGoal)
	refused(t, d, "flag.yaml", `rollout "web"`, "spec.flag.variants", "abort it")
	if liveFlag(d) != live || live.State().Weight != v1alpha1.PercentOf(30) || live.Flag().HasVariant("beta") {
		t.Errorf("after the refusal: flag %+v, want the same one at 30%%", live.State())
	}
	if got := reasons(t, d, "web", reloadActor); len(got) != 3 {
		t.Errorf("reload events %v, want added and changed twice only", got)
	}
}

// countOf counts the users who have variant.
func countOf(variants map[int]string, variant string) int {
	n := 0
	for _, v := range variants {
		if v == variant {
			n++
		}
	}
	return n
}

// colourFlag is flag button-colour, red for everybody, rolled out as
// holdAtFivePercent says once a variant is; variants go in its flow map.
func colourFlag(variants, rest string) string {
	return "apiVersion: pipit.dev/v1alpha1\nkind: Rollout\nmetadata: {name: web}\nspec:\n  flag:\n    key: button-colour\n" +
		"    variants: {" + variants + "}\n    defaultVariant: red\n" + rest + holdAtFivePercent
}

// TestReloadRebuildsAnIdleFlag changes spec.flag with no rollout in
// flight: the flag is rebuilt and serves the new values at once, counted
// in its metrics. Dropping the variant everybody has, switching to a
// service and a second rollout of the flag are refused; a new
// rolloutVariant is rolled out.
func TestReloadRebuildsAnIdleFlag(t *testing.T) {
	f := &rolloutFiles{}
	f.set("colour.yaml", colourFlag(`blue: "#00f", red: "#f00"`, ""))
	d, c, u := startFlagReloadable(t, f)
	u.Key = "button-colour"
	if a, err := u.Evaluate(0); err != nil || a.Variant != "red" || string(a.Value) != `"#f00"` {
		t.Fatalf("before the reload: %+v %v", a, err)
	}
	live := liveFlag(d)
	f.set("colour.yaml", colourFlag(`blue: "#00f", red: "#e00", green: "#0f0"`, ""))
	if res := reload(t, d); len(res.Changed) != 1 || !slices.Equal(res.Changed[0].Fields, []string{"spec.flag.variants"}) {
		t.Fatalf("reload: %+v, want web's variants changed", res)
	}
	if liveFlag(d) == live {
		t.Error("the flag was not rebuilt")
	}
	for i := range 3 {
		if a, err := u.Evaluate(i); err != nil || a.Variant != "red" || string(a.Value) != `"#e00"` {
			t.Fatalf("user %d after the reload: %+v %v, want red's new value", i, a, err)
		}
	}
	// The metrics follow the new flag, which has answered 3 times.
	if n := sumOf(t, d, "pipit_flag_evaluations_total", map[string]string{"flag": "button-colour", "variant": "red"}); n != 3 {
		t.Errorf("%v evaluations of red exported, want the new flag's 3", n)
	}

	f.set("colour.yaml", strings.Replace(colourFlag(`blue: "#00f", green: "#0f0"`, ""), "defaultVariant: red", "defaultVariant: blue", 1))
	refused(t, d, "colour.yaml", `rollout "web"`, "spec.flag.variants", `"red"`)
	f.set("colour.yaml", rolloutDoc("web", urlService("127.0.0.1:0", "http://127.0.0.1:1", ""), holdAtFivePercent))
	refused(t, d, "colour.yaml", "spec.flag", "give the rollout a new name instead")
	f.set("colour.yaml", colourFlag(`blue: "#00f", red: "#e00", green: "#0f0"`, ""))
	f.set("other.yaml", strings.Replace(colourFlag(`blue: "#00f", red: "#f00"`, ""), "name: web", "name: other", 1))
	refused(t, d, "other.yaml", `rollout "other" rolls out flag button-colour, as rollout "web" does`)
	f.set("other.yaml", "")
	if a, err := u.Evaluate(0); err != nil || string(a.Value) != `"#e00"` {
		t.Errorf("after the refusals: %+v %v, want red's value of the last reload", a, err)
	}

	f.set("colour.yaml", colourFlag(`blue: "#00f", red: "#e00", green: "#0f0"`, "    rolloutVariant: green\n"))
	reload(t, d)
	st := waitFor(t, c, 10*time.Second, "green at 5%", func(st v1alpha1.RolloutStatus) bool { return st.CanaryWeight > 0 })
	if st.Canary == nil || st.Canary.Version != "green" {
		t.Errorf("canary %+v, want green", st.Canary)
	}
}

// TestReloadRefusesAFlagWithoutOFREP adds a flag rollout to a daemon
// started without an OFREP listener: refused, naming the file and the
// rollout, and nothing is added.
func TestReloadRefusesAFlagWithoutOFREP(t *testing.T) {
	api := app(t, sampleapp.Config{Version: "v1"})
	f := &rolloutFiles{}
	f.set("api.yaml", rolloutDoc("api", urlService("127.0.0.1:0", api.URL, ""), holdAtFivePercent))
	d, c := startReloadable(t, t.TempDir(), f)
	f.set("flag.yaml", flagHead+holdAtFivePercent)
	refused(t, d, "flag.yaml", `rollout "web"`, "--ofrep")
	if _, err := c.Rollout(context.Background(), "web"); !errors.Is(err, controlapi.ErrNotFound) {
		t.Errorf("the refused flag rollout was added: %v", err)
	}
	if got := reasons(t, c, "api", reloadActor); len(got) != 0 {
		t.Errorf("a refused reload left events: %v", got)
	}
}
