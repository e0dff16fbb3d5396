package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/controlapi"
)

// manualSteps keeps a canary where it is put until a person moves it.
const manualSteps = `    steps:
    - setWeight: 50
    - setWeight: 80
  decision: manual
`

// handOverFixture is a process rollout run by one `pipit up` after another
// on one state directory.
type handOverFixture struct {
	t              testing.TB
	bin            string   // the pipit the next up runs
	files          []string // the files of the first up, for the next
	rollout, v2    string
	state, listen  string
	daemons        []*daemon
	replicasBefore []int
}

func newHandOverFixture(t testing.TB) *handOverFixture {
	t.Helper()
	fx := &handOverFixture{t: t, bin: pipitBin, state: t.TempDir(), listen: freePort(t)}
	fx.rollout, fx.v2 = writeProcessRolloutWith(t, fx.listen, manualSteps)
	t.Cleanup(func() {
		for _, d := range fx.daemons {
			if d.cmd.ProcessState == nil {
				killGroups(d.stopGracefully(20 * time.Second))
			}
		}
		killGroups(fx.replicasBefore)
	})
	return fx
}

// up starts a daemon on the fixture with env added to its environment,
// and waits until its control API is up unless it is meant to die first.
// The first up's more files are every later one's too.
func (fx *handOverFixture) up(env []string, wait bool, more ...string) *daemon {
	fx.t.Helper()
	if fx.files == nil {
		fx.files = append([]string{fx.rollout}, more...)
	}
	d := startDaemon(fx.t, fx.bin, fx.state, env, wait, fx.files...)
	fx.daemons = append(fx.daemons, d)
	return d
}

// startCanary deploys v2 and waits until it takes half the traffic, then
// notes the replicas running.
func (fx *handOverFixture) startCanary(d *daemon) {
	fx.t.Helper()
	if r := pipit(fx.t, 20*time.Second, "deploy", "web", "--version", "v2", "--from", fx.v2, "--state-dir", fx.state); r.code != 0 {
		fx.t.Fatalf("pipit deploy: exit %d: %s", r.code, r.stderr)
	}
	d.waitFor(20*time.Second, "v2 at 50%, waiting for a decision", func(st v1alpha1.RolloutStatus) bool {
		return st.CanaryWeight == v1alpha1.PercentOf(50) && st.Phase == v1alpha1.PhaseAwaitingDecision
	})
	fx.replicasBefore = fx.recordedReplicas()
	if len(fx.replicasBefore) != 4 {
		fx.t.Fatalf("the daemon runs %v, want 2 replicas of v1 and 2 of v2", fx.replicasBefore)
	}
}

// recordedReplicas lists the processes the process target recorded as
// running.
func (fx *handOverFixture) recordedReplicas() []int {
	fx.t.Helper()
	b, err := os.ReadFile(filepath.Join(fx.state, "processes", "web", "processes.json"))
	if err != nil {
		fx.t.Fatal(err)
	}
	var rec struct {
		Processes []struct {
			PID int `json:"pid"`
		} `json:"processes"`
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		fx.t.Fatalf("processes.json: %v\n%s", err, b)
	}
	var pids []int
	for _, p := range rec.Processes {
		if alive(p.PID) {
			pids = append(pids, p.PID)
		}
	}
	slices.Sort(pids)
	return pids
}

// checkResumed checks the daemon that serves after a hand-over, finished
// or cut short: the rollout is where it was, the proxy answers, no event
// is written twice, and the processes were adopted (same pids) or, when
// adopted is false, restarted with none of the earlier ones left.
func (fx *handOverFixture) checkResumed(d *daemon, adopted bool) {
	fx.t.Helper()
	st := d.waitFor(30*time.Second, "v2 at 50%", func(st v1alpha1.RolloutStatus) bool {
		return st.Canary != nil && st.Canary.Version == "v2" && st.CanaryWeight == v1alpha1.PercentOf(50)
	})
	if st.Phase != v1alpha1.PhaseAwaitingDecision {
		fx.t.Errorf("phase %s after the hand-over, want %s", st.Phase, v1alpha1.PhaseAwaitingDecision)
	}
	waitAnswers(fx.t, fx.listen)
	checkNoEventTwice(fx.t, d.history())
	var now []int
	deadline := time.Now().Add(20 * time.Second)
	for now = fx.recordedReplicas(); len(now) != 4 && time.Now().Before(deadline); now = fx.recordedReplicas() {
		time.Sleep(50 * time.Millisecond)
	}
	switch {
	case adopted && !slices.Equal(now, fx.replicasBefore):
		fx.t.Errorf("processes %v after the hand-over, %v before: not adopted\n%s", now, fx.replicasBefore, d.output())
	case !adopted:
		for _, pid := range fx.replicasBefore {
			if alive(pid) {
				fx.t.Errorf("process %d of the daemon that died still runs", pid)
			}
		}
	}
}

// checkNoEventTwice fails when two events are the same: two daemons took
// one decision.
func checkNoEventTwice(t testing.TB, events []v1alpha1.Event) {
	t.Helper()
	seen := map[string]bool{}
	for _, e := range events {
		key := fmt.Sprintf("%s|%s|%d|%s", e.Reason, e.Message, e.Step, e.Time.UTC().Format(time.RFC3339Nano))
		if seen[key] {
			t.Errorf("event written twice: %s", key)
		}
		seen[key] = true
	}
}

// TestHandOverKeepsSocketsAndProcesses: a second `pipit up` on the same
// state directory takes over from the running one: the old daemon exits
// 0 saying so, the proxy and the control API answer on the same
// addresses, the processes keep their pids, the rollout is where it was
// and no event is written twice.
func TestHandOverKeepsSocketsAndProcesses(t *testing.T) {
	fx := newHandOverFixture(t)
	old := fx.up(nil, true)
	fx.startCanary(old)
	apiBefore, _ := os.ReadFile(filepath.Join(fx.state, controlapi.AddressFile))

	next := fx.up(nil, true)
	if code := old.awaitExit(30 * time.Second); code != 0 || !strings.Contains(old.output(), "handed over to pid ") {
		t.Fatalf("the old daemon exited %d:\n%s", code, old.output())
	}
	fx.checkResumed(next, true)
	if apiAfter, _ := os.ReadFile(filepath.Join(fx.state, controlapi.AddressFile)); string(apiAfter) != string(apiBefore) {
		t.Errorf("the control API moved from %s to %s", apiBefore, apiAfter)
	}
}

// handOverCrashes are the stages at which a daemon dies in
// TestHandOverCrash (as crashPoint in the standalone package names them),
// and whether the processes survive it, adopted by the daemon that serves
// afterwards, or are restarted cleanly.
var handOverCrashes = []struct {
	stage   string
	adopted bool
}{
	{"new:dialed", true},
	{"new:files", true},
	{"new:released", true},
	{"new:started", true},
	{"old:hello", false},
	{"old:stopped", false},
	{"old:released", false},
	{"old:sent", true},
	{"old:serving", true},
}

// TestHandOverCrash kills either daemon with SIGKILL at each stage of a
// hand-over: afterwards one daemon serves the proxy and the control API,
// the rollout is where it was, no event is written twice, and the
// processes are adopted or restarted with none left behind, as
// docs/operations.md says.
func TestHandOverCrash(t *testing.T) {
	for _, tc := range handOverCrashes {
		t.Run(tc.stage, func(t *testing.T) {
			fx := newHandOverFixture(t)
			crash := []string{"PIPIT_TEST_HANDOVER_CRASH=" + tc.stage}
			oldDies := strings.HasPrefix(tc.stage, "old:")
			old := fx.up(only(oldDies, crash), true)
			fx.startCanary(old)
			next := fx.up(only(!oldDies, crash), oldDies)
			survivor, dead := old, next
			if oldDies {
				survivor, dead = next, old
			}
			if code := dead.awaitExit(60 * time.Second); code != -1 {
				t.Fatalf("the daemon meant to die at %s exited %d:\n%s", tc.stage, code, dead.output())
			}
			fx.checkResumed(survivor, tc.adopted)
		})
	}
}

// only is env when cond holds, else nothing.
func only(cond bool, env []string) []string {
	if cond {
		return env
	}
	return nil
}
