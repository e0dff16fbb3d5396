package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/flag/ofreptest"
)

// flagRollout is the write-up's new-checkout flag, rolled out by `pipit
// deploy` 5 → 25 → 50, then promoted by a person, with the error rate
// its users' requests report checked every 300 ms.
const flagRollout = `apiVersion: pipit.dev/v1alpha1
kind: Rollout
metadata: {name: web}
spec:
  flag:
    key: new-checkout
    variants: {on: true, off: false}
    defaultVariant: off
  strategy:
    steps:
    - setWeight: 5
    - pause: {duration: 1s}
    - setWeight: 25
    - pause: {duration: 1s}
    - setWeight: 50
    - pause: {}
  analysis:
    interval: 300ms
    failureLimit: 1
    metrics:
    - name: error-rate
      thresholdRange: {max: 5}
`

// startFlagDaemon runs `pipit up --ofrep` on flagRollout and returns it
// with the users of an application reading the flag.
func startFlagDaemon(t *testing.T) (*daemon, *ofreptest.Users) {
	t.Helper()
	dir := t.TempDir()
	file := filepath.Join(t.TempDir(), "flag.yaml")
	if err := os.WriteFile(file, []byte(flagRollout), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(pipitBin, "up", "--state-dir", dir, "--api", "127.0.0.1:0", "--ofrep", "127.0.0.1:0", "-f", file)
	d := startCmd(t, cmd, dir, file, true)
	addr, err1 := os.ReadFile(filepath.Join(dir, "ofrep-address"))
	token, err2 := os.ReadFile(filepath.Join(dir, "ofrep-token"))
	if err1 != nil || err2 != nil {
		t.Fatalf("OFREP address %v, token %v:\n%s", err1, err2, d.output())
	}
	if v := d.status(); v.Listen != strings.TrimSpace(string(addr)) || v.Status.Stable.Version != "off" {
		t.Fatalf("status before the rollout: listen %s, stable %+v", v.Listen, v.Status.Stable)
	}
	return d, &ofreptest.Users{Addr: strings.TrimSpace(string(addr)), Token: strings.TrimSpace(string(token)),
		Key: "new-checkout", N: 400, RolledOut: "on"}
}

// run is pipit with the daemon's state directory, which must succeed.
func (d *daemon) run(args ...string) string {
	d.t.Helper()
	r := pipit(d.t, 15*time.Second, append(args, "--state-dir", d.stateDir)...)
	if r.code != 0 {
		d.t.Fatalf("pipit %s: exit %d: %s%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

// everyone checks that every user gets variant for reason.
func everyone(t *testing.T, u *ofreptest.Users, variant, reason, when string) {
	t.Helper()
	for i := range u.N {
		if a, err := u.Evaluate(i); err != nil || a.Variant != variant || a.Reason != reason {
			t.Fatalf("%s: user %d got %+v (%v), want %s for %s", when, i, a, err, variant, reason)
		}
	}
}

// TestFlagRolloutEndToEnd rolls the new-checkout flag out to 5, 25 and
// 50% of simulated users, whose share is checked at each weight, promotes
// it to everyone, undoes the promotion, then rolls out a variant whose
// requests fail, which the events roll back, and aborts a third rollout.
func TestFlagRolloutEndToEnd(t *testing.T) {
	d, u := startFlagDaemon(t)
	if r := pipit(t, 15*time.Second, "deploy", "web", "--version", "maybe", "--state-dir", d.stateDir); r.code == 0 || !strings.Contains(r.stderr, `no variant "maybe"`) {
		t.Errorf("deploying no variant: exit %d: %s", r.code, r.stderr)
	}
	ctx, stop := context.WithCancel(context.Background())
	wait := u.Run(ctx, 50*time.Millisecond)
	d.run("deploy", "web", "--version", "on")
	for _, w := range []int{5, 25, 50} {
		d.waitFor(30*time.Second, "weight "+v1alpha1.Percent(w*int(v1alpha1.PercentScale)).String(), func(st v1alpha1.RolloutStatus) bool {
			return st.CanaryWeight == v1alpha1.Percent(w)*v1alpha1.PercentScale
		})
		variants, err := u.Round()
		if on := variants["on"] * 100 / u.N; err != nil || on < w-4 || on > w+4 {
			t.Errorf("at %d%%: %v (%v), %d%% of users on", w, variants, err, on)
		}
	}
	d.waitFor(30*time.Second, "the pause at 50%", func(st v1alpha1.RolloutStatus) bool { return st.Phase == v1alpha1.PhaseAwaitingDecision })
	d.run("promote", "web")
	d.waitFor(30*time.Second, "the promotion", func(st v1alpha1.RolloutStatus) bool { return st.Phase == v1alpha1.PhaseSucceeded })
	stop()
	if err := wait(); err != nil || u.Lost() != 0 {
		t.Fatalf("users: %v; lost on %d times", err, u.Lost())
	}
	everyone(t, u, "on", "STATIC", "after the promotion")
	d.run("undo", "web")
	d.waitFor(15*time.Second, "the undo", func(st v1alpha1.RolloutStatus) bool { return st.Phase == v1alpha1.PhaseRolledBack })
	everyone(t, u, "off", "DEFAULT", "after the undo")
	failingRolledBack(t, d, u)
	d.run("deploy", "web", "--version", "on")
	d.waitFor(30*time.Second, "weight 5%", func(st v1alpha1.RolloutStatus) bool { return st.CanaryWeight > 0 })
	d.run("abort", "web")
	d.waitFor(15*time.Second, "the abort", func(st v1alpha1.RolloutStatus) bool { return st.Phase == v1alpha1.PhaseAborted })
	everyone(t, u, "off", "DISABLED", "after the abort")
	if out := d.run("history", "web"); !strings.Contains(out, "error-rate") {
		t.Errorf("history does not name the metric that rolled back:\n%s", out)
	}
}

// failingRolledBack rolls out a variant whose users' requests fail: the
// events they report roll it back, and it is off for everyone at once.
func failingRolledBack(t *testing.T, d *daemon, u *ofreptest.Users) {
	t.Helper()
	u.Fails = true
	ctx, stop := context.WithCancel(context.Background())
	wait := u.Run(ctx, 50*time.Millisecond)
	d.run("deploy", "web", "--version", "on")
	d.waitFor(30*time.Second, "the rollback on the error rate", func(st v1alpha1.RolloutStatus) bool {
		return st.Phase == v1alpha1.PhaseRolledBack && strings.Contains(st.Message, "error-rate")
	})
	stop()
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	everyone(t, u, "off", "DISABLED", "after the rollback")
}
