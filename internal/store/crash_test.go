package store

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pipit-dev/pipit/api/v1alpha1"
)

// crashHelperEnv makes the test binary run runCrashWriter on the state
// directory it names instead of the tests.
const crashHelperEnv = "PIPIT_STORE_CRASH_WRITER"

const crashRollout = "crash"

// eventsPerSave varies the number of events a save appends, so a status
// paired with another save's events shows in the counts.
func eventsPerSave(i int) int { return i%3 + 1 }

// runCrashWriter plays a daemon that saves as fast as it can until it is
// killed. Save i appends eventsPerSave(i) events with Step i, consumes
// command i, and records in the status both i (PassedChecks) and the total
// number of events saved so far (ObservedGeneration). Like the daemon, it
// first carries out the command that a previous run accepted but never
// consumed.
func runCrashWriter(dir string) int {
	ctx := context.Background()
	s, err := Open(ctx, dir, Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	var i, total int
	switch r, err := s.Rollout(ctx, crashRollout); {
	case errors.Is(err, ErrNotFound):
		total = eventsPerSave(0)
		err = s.SaveStatus(ctx, crashRollout, []byte("spec"), crashStatus(0, total), crashEvents(0))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	case err != nil:
		fmt.Fprintln(os.Stderr, err)
		return 1
	default:
		i, total = int(r.Status.Analysis.PassedChecks), int(r.Status.ObservedGeneration)
	}
	for first := true; ; first = false {
		i++
		id, err := crashCommand(ctx, s, i)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		total += eventsPerSave(i)
		if err := s.SaveStatus(ctx, crashRollout, []byte("spec"), crashStatus(i, total), crashEvents(i), id); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		if first {
			fmt.Println("ready")
		}
	}
}

// crashCommand returns the pending command for save i, enqueuing it unless
// a killed run already had.
func crashCommand(ctx context.Context, s *Store, i int) (int64, error) {
	pending, err := s.PendingCommands(ctx, crashRollout)
	if err != nil {
		return 0, err
	}
	switch len(pending) {
	case 0:
		args, _ := json.Marshal(i)
		return s.EnqueueCommand(ctx, Command{Rollout: crashRollout, Kind: "step", Args: args, Actor: "test"})
	case 1:
		if n, err := commandStep(pending[0]); err != nil || n != i {
			return 0, fmt.Errorf("pending command is for save %d (%v), want %d", n, err, i)
		}
		return pending[0].ID, nil
	}
	return 0, fmt.Errorf("%d pending commands, want at most 1", len(pending))
}

func commandStep(c Command) (int, error) {
	var n int
	err := json.Unmarshal(c.Args, &n)
	return n, err
}

func crashStatus(i, total int) v1alpha1.RolloutStatus {
	return v1alpha1.RolloutStatus{
		ObservedGeneration: int64(total),
		Phase:              v1alpha1.PhaseProgressing,
		Message:            fmt.Sprintf("save %d", i),
		Analysis:           v1alpha1.AnalysisStatus{PassedChecks: int32(i)},
	}
}

func crashEvents(i int) []v1alpha1.Event {
	evs := make([]v1alpha1.Event, eventsPerSave(i))
	for j := range evs {
		evs[j] = v1alpha1.Event{
			Time: metav1.NewMicroTime(time.Now()), Type: v1alpha1.EventNormal, Reason: "Saved",
			Message: fmt.Sprintf("save %d event %d", i, j), Phase: v1alpha1.PhaseProgressing, Step: int32(i),
		}
	}
	return evs
}

// TestCrashKeepsStateConsistent kill -9s a writer at random moments and
// checks after each kill that the database is intact and that status,
// events and commands agree, as they can only if each save was atomic.
func TestCrashKeepsStateConsistent(t *testing.T) {
	dir := t.TempDir()
	seed := rand.Uint64()
	rng := rand.New(rand.NewPCG(seed, 0))
	t.Logf("seed %d", seed)

	lastSaved := -1
	for round := range 3 {
		delay := time.Duration(10+rng.IntN(190)) * time.Millisecond
		killWriter(t, dir, delay)
		saved := checkCrashState(t, dir)
		t.Logf("round %d: killed %v after ready, at save %d", round, delay, saved)
		if saved <= lastSaved {
			t.Fatalf("round %d: last save is %d, not after the previous round's %d", round, saved, lastSaved)
		}
		lastSaved = saved
	}
}

// killWriter starts the writer on dir, lets it run for delay after its
// first save and kills it with SIGKILL.
func killWriter(t *testing.T, dir string, delay time.Duration) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashHelperEnv+"="+dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan bool, 1)
	go func() { ready <- bufio.NewScanner(stdout).Scan() }()
	select {
	case ok := <-ready:
		if !ok {
			cmd.Wait()
			t.Fatalf("writer ended before its first save: %s", stderr.String())
		}
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatal("writer made no save in 20s")
	}
	time.Sleep(delay)
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("writer stopped with %v before it was killed: %s", err, stderr.String())
	}
}

// checkCrashState reopens the state after a kill and returns the number of
// the last save.
func checkCrashState(t *testing.T, dir string) int {
	t.Helper()
	ctx := context.Background()
	s, err := Open(ctx, dir, Options{})
	if err != nil {
		t.Fatalf("reopen after kill: %v", err)
	}
	defer s.Close()

	var integrity string
	if err := s.db.QueryRowContext(ctx, "PRAGMA integrity_check").Scan(&integrity); err != nil || integrity != "ok" {
		t.Fatalf("integrity_check = %q, %v", integrity, err)
	}
	r, err := s.Rollout(ctx, crashRollout)
	if err != nil {
		t.Fatal(err)
	}
	last, total := int(r.Status.Analysis.PassedChecks), int(r.Status.ObservedGeneration)
	evs, err := s.Events(ctx, crashRollout, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != total {
		t.Fatalf("status %d counts %d events, %d are stored", last, total, len(evs))
	}
	// Every save 0..last appended its events, in order, and none other.
	k := 0
	for i := 0; i <= last; i++ {
		for j := range eventsPerSave(i) {
			if k >= len(evs) || evs[k].Step != int32(i) || evs[k].Message != fmt.Sprintf("save %d event %d", i, j) {
				t.Fatalf("event %d is not event %d of save %d: %+v", k, j, i, evs[min(k, len(evs)-1)])
			}
			k++
		}
	}

	var done int
	err = s.db.QueryRowContext(ctx, "SELECT count(*) FROM commands WHERE done_at IS NOT NULL").Scan(&done)
	if err != nil {
		t.Fatal(err)
	}
	if done != last {
		t.Errorf("%d commands done, but %d saves consumed one each", done, last)
	}
	pending, err := s.PendingCommands(ctx, crashRollout)
	if err != nil {
		t.Fatal(err)
	}
	if len(pending) > 1 {
		t.Errorf("%d commands pending, want at most the one for the save cut short", len(pending))
	}
	if len(pending) == 1 {
		if n, err := commandStep(pending[0]); err != nil || n != last+1 {
			t.Errorf("pending command is for save %d (%v), want %d", n, err, last+1)
		}
	}
	return last
}
