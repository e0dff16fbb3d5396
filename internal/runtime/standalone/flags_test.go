package standalone

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/controlapi"
	"github.com/pipit-dev/pipit/internal/flag/ofreptest"
	"github.com/pipit-dev/pipit/internal/store"
)

// flagHead is the write-up's flag, on rolled out against off.
const flagHead = `apiVersion: pipit.dev/v1alpha1
kind: Rollout
metadata: {name: web}
spec:
  flag:
    key: new-checkout
    variants: {on: true, off: false}
    defaultVariant: off
    rolloutVariant: on
`

// flagYAML is the flag rolled out 5 → 25 → 50 → 100, with the error
// rate its applications report checked every 200 ms.
const flagYAML = flagHead + `  strategy:
    steps:
    - setWeight: 5
    - pause: {duration: 600ms}
    - setWeight: 25
    - pause: {duration: 600ms}
    - setWeight: 50
    - pause: {duration: 600ms}
  analysis:
    interval: 200ms
    failureLimit: 1
    metrics:
    - name: error-rate
      thresholdRange: {max: 5}
`

// startFlags starts a daemon serving the flag rollout of yaml over OFREP
// and the users of its application.
func startFlags(t *testing.T, yaml string, fails bool) (*Daemon, *ofreptest.Users) {
	t.Helper()
	dir := t.TempDir()
	d, _ := startConfig(t, Config{Sources: []Source{{File: "flag.yaml", Data: []byte(yaml)}}, StateDir: dir, OFREPAddr: "127.0.0.1:0"})
	u := ofrepUsers(t, d, dir)
	u.Fails = fails
	if v, err := d.Rollout(context.Background(), "web"); err != nil || v.Listen != u.Addr || v.Flag != "new-checkout" {
		t.Fatalf("view %+v, %v; want it listening on %s", v, err, u.Addr)
	}
	return d, u
}

// ofrepUsers are 200 users of flag new-checkout, rolling on out, served
// by d's OFREP listener; dir is d's state directory.
func ofrepUsers(t *testing.T, d *Daemon, dir string) *ofreptest.Users {
	t.Helper()
	addr, ok := d.OFREPAddr()
	token, err := store.ReadTokenFile(dir, store.OFREPTokenFile)
	if !ok || err != nil {
		t.Fatalf("OFREP on %q (%v): %v", addr, ok, err)
	}
	return &ofreptest.Users{Addr: addr, Token: token, Key: "new-checkout", N: 200, RolledOut: "on"}
}

// runUntil has u's users make requests until the rollout reaches what
// cond says, and returns its status then.
func runUntil(t *testing.T, d *Daemon, u *ofreptest.Users, what string, cond func(v1alpha1.RolloutStatus) bool) v1alpha1.RolloutStatus {
	t.Helper()
	ctx, stop := context.WithCancel(context.Background())
	wait := u.Run(ctx, 20*time.Millisecond)
	st := waitFor(t, d, 30*time.Second, what, cond)
	stop()
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	return st
}

// TestFlagRolloutPromoted rolls a healthy flag out to everyone: no user
// who got the new variant loses it on the way, and at the end everyone
// has it.
func TestFlagRolloutPromoted(t *testing.T) {
	d, u := startFlags(t, flagYAML, false)
	st := runUntil(t, d, u, "the promotion", phaseIs(v1alpha1.PhaseSucceeded))
	if st.Stable.Version != "on" || u.Lost() != 0 {
		t.Errorf("stable %s, users lost on %d times", st.Stable.Version, u.Lost())
	}
	for i := range u.N {
		if a, err := u.Evaluate(i); err != nil || a.Variant != "on" || a.Reason != "STATIC" {
			t.Fatalf("user %d after the promotion: %+v %v", i, a, err)
		}
	}
}

// TestFlagRolloutRolledBack rolls out a variant whose requests fail: the
// error rate its users report rolls it back, and it is off for everyone.
func TestFlagRolloutRolledBack(t *testing.T) {
	d, u := startFlags(t, flagYAML, true)
	st := runUntil(t, d, u, "the rollback", phaseIs(v1alpha1.PhaseRolledBack))
	if st.CanaryWeight != 0 || !strings.Contains(st.Message, "error-rate") {
		t.Errorf("rolled back at %s: %s", st.CanaryWeight, st.Message)
	}
	for i := range u.N {
		if a, err := u.Evaluate(i); err != nil || a.Variant != "off" || a.Reason != "DISABLED" {
			t.Fatalf("user %d after the rollback: %+v %v", i, a, err)
		}
	}
}

// TestFlagRolloutRolledBackOnConversions rolls out a variant whose users
// buy less: the conversions the application reports for the goal judge
// it, and it is rolled back with the metric named.
func TestFlagRolloutRolledBackOnConversions(t *testing.T) {
	yaml := strings.Replace(flagYAML, `    metrics:
    - name: error-rate
      thresholdRange: {max: 5}
`, `    goals:
    - name: purchase
    metrics:
    - name: conversion-rate:purchase
      thresholdRange: {min: 20}
`, 1)
	d, u := startFlags(t, yaml, false)
	u.N, u.Goal, u.Converts = 400, "purchase", map[string]int{"off": 40, "on": 5}
	st := runUntil(t, d, u, "the rollback", phaseIs(v1alpha1.PhaseRolledBack))
	if !strings.Contains(st.Message, "conversion-rate:purchase") {
		t.Errorf("rolled back for %q, not for the conversion rate", st.Message)
	}
	// One more round, so that the users see the flag off for everyone.
	if _, err := u.Round(); err != nil {
		t.Fatal(err)
	}
	// What /metrics shows of the flag.
	for _, want := range []struct {
		series string
		labels map[string]string
	}{
		{"pipit_flag_evaluations_total", map[string]string{"flag": "new-checkout", "variant": "on", "reason": "SPLIT"}},
		{"pipit_flag_evaluations_total", map[string]string{"variant": "off", "reason": "DISABLED"}},
		{"pipit_flag_outcomes_total", map[string]string{"role": "stable", "variant": "off", "outcome": "success"}},
	} {
		if n := sumOf(t, d, want.series, want.labels); n == 0 {
			t.Errorf("no %s%v exported", want.series, want.labels)
		}
	}
}

// flagExperimentYAML is an A/B test of the flag's variant on against off
// on the goal purchase, half of the users each.
const flagExperimentYAML = flagHead + `  strategy:
    experiment: {split: 50, minSample: 100, maxDuration: 1m}
  analysis:
    interval: 200ms
    goals:
    - name: purchase
`

// TestFlagExperimentNamesTheWinner runs an experiment on a flag: half of
// the users get the variant on, whose users report the goal three times
// as often, and it is named the winner with its numbers and promoted.
func TestFlagExperimentNamesTheWinner(t *testing.T) {
	d, u := startFlags(t, flagExperimentYAML, false)
	u.Goal, u.Converts = "purchase", map[string]int{"off": 10, "on": 30}
	st := newUsersUntil(t, d, u, func(st v1alpha1.RolloutStatus) bool { return st.Phase.Terminal() })
	x := st.Experiment
	if st.Phase != v1alpha1.PhaseSucceeded || x == nil || x.Winner != v1alpha1.WinnerTreatment || st.Stable.Version != "on" {
		t.Fatalf("phase %s, experiment %+v: want on promoted as the winner", st.Phase, x)
	}
	if x.Control.Visitors < 100 || x.Treatment.Visitors < 100 || x.Control.Version != "off" || x.Treatment.Version != "on" || x.SampleRatioFrom == nil {
		t.Errorf("experiment %+v: want at least 100 users of off and of on, the sample ratio counted", x)
	}
}

// maxRoundUsers bounds the users of one round: each reports an outcome
// and maybe a conversion, in one batch of at most ofrep.MaxEvents.
const maxRoundUsers = 720

// newUsersUntil has 40 new users come every 20 ms (up to maxRoundUsers),
// each reporting the goal in the round they are first served, as an
// experiment's users keep coming; until the rollout reaches what cond
// says, within 30 s. The
// sequential test takes its evidence from each check's new visitors and
// their conversions: conversions of users counted at an earlier check
// alone add none (see docs/experiments.md).
func newUsersUntil(t *testing.T, d *Daemon, u *ofreptest.Users, cond func(v1alpha1.RolloutStatus) bool) v1alpha1.RolloutStatus {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		v, err := d.Rollout(context.Background(), "web")
		if err != nil {
			t.Fatal(err)
		}
		if cond(v.Status) {
			return v.Status
		}
		if time.Now().After(deadline) {
			t.Fatalf("not reached within 30s: phase %s, %s", v.Status.Phase, v.Status.Message)
		}
		u.N = min(u.N+40, maxRoundUsers)
		if _, err := u.Round(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// sumOf adds up the values of the daemon's series name whose labels
// include labels.
func sumOf(t *testing.T, d *Daemon, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := d.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, lp := range m.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			for k, v := range labels {
				if have[k] != v {
					continue metrics
				}
			}
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}

// TestFlagRolloutsRefused checks the daemon refuses a flag without an
// OFREP listener, and one flag rolled out twice.
func TestFlagRolloutsRefused(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{Sources: []Source{{File: "flag.yaml", Data: []byte(flagYAML)}}}, "serve flags with pipit up --ofrep ADDR"},
		{Config{Sources: []Source{{File: "a.yaml", Data: []byte(flagYAML)}, {File: "b.yaml", Data: []byte(strings.Replace(flagYAML, "name: web", "name: other", 1))}},
			OFREPAddr: "127.0.0.1:0"}, `rollout "other" rolls out flag new-checkout, as rollout "web" does`},
	} {
		tc.cfg.StateDir = t.TempDir()
		_, err := Start(context.Background(), tc.cfg)
		var cfgErr *ConfigError
		if !errors.As(err, &cfgErr) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("got %v, want a ConfigError with %q", err, tc.want)
		}
	}
}

// TestOFREPTakesApplicationTokensOnly checks who the OFREP listener lets
// in: its own token and named tokens of the ofrep role, which stop at
// once when revoked; never a token of the control API, not even the
// admin's.
func TestOFREPTakesApplicationTokensOnly(t *testing.T) {
	d, u := startFlags(t, flagYAML, false)
	ctx := context.Background()
	app, err := d.CreateToken(ctx, "checkout-app", controlapi.RoleOFREP)
	if err != nil {
		t.Fatal(err)
	}
	ops, err := d.CreateToken(ctx, "ops", controlapi.RoleOperator)
	if err != nil {
		t.Fatal(err)
	}
	admin, err := store.LoadOrCreateToken(d.stateDir)
	if err != nil {
		t.Fatal(err)
	}
	evaluate := func(token string) int {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+u.Addr+"/ofrep/v1/evaluate/flags/new-checkout",
			strings.NewReader(`{"context":{"targetingKey":"user-1"}}`))
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for name, tc := range map[string]struct {
		token string
		want  int
	}{
		"its own": {u.Token, http.StatusOK}, "an application's": {app.Token, http.StatusOK},
		"an operator's": {ops.Token, http.StatusUnauthorized}, "the admin's": {admin, http.StatusUnauthorized},
	} {
		if got := evaluate(tc.token); got != tc.want {
			t.Errorf("%s token: %d, want %d", name, got, tc.want)
		}
	}
	if err := d.RevokeToken(ctx, "checkout-app"); err != nil {
		t.Fatal(err)
	}
	if got := evaluate(app.Token); got != http.StatusUnauthorized {
		t.Errorf("a revoked application token: %d, want 401", got)
	}
}
