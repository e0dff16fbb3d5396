package store

import (
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/pipit-dev/pipit/api/v1alpha1"
)

func check(canary float64) []v1alpha1.MetricResult {
	return []v1alpha1.MetricResult{
		{Name: "error-rate", Canary: ptr(canary), Stable: ptr(0.5), Verdict: v1alpha1.VerdictSuccessful, Message: "ok"},
		{Name: "latency-p99", Verdict: v1alpha1.VerdictNoData, DryRun: true},
	}
}

func TestSamplesRoundTrip(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, t.TempDir())
	for sec := 1; sec <= 3; sec++ {
		if err := s.SaveStatus(ctx, "web", nil, checked(sec, check(float64(sec))), nil); err != nil {
			t.Fatal(err)
		}
	}

	got, err := s.Samples(ctx, "web", "error-rate", checkAt(2))
	if err != nil {
		t.Fatal(err)
	}
	want := []Sample{
		{At: checkAt(2), MetricResult: check(2)[0]},
		{At: checkAt(3), MetricResult: check(3)[0]},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("error-rate since 2s:\ngot  %+v\nwant %+v", got, want)
	}

	// One microsecond later than a sample excludes it.
	got, err = s.Samples(ctx, "web", "latency-p99", checkAt(2).Add(time.Microsecond))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || !got[0].At.Equal(checkAt(3)) || got[0].Canary != nil || got[0].Stable != nil || !got[0].DryRun {
		t.Errorf("latency-p99 after 2s = %+v, want one dry-run sample at 3s without values", got)
	}

	all, err := s.Samples(ctx, "web", "", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 6 {
		t.Errorf("every metric: %d samples, want 6", len(all))
	}
}

// TestSamplesRecordEachCheckOnce: the runner saves a status many times
// between two checks; each check's results become samples once, with the
// status that carries them, or not at all when that save fails.
func TestSamplesRecordEachCheckOnce(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, t.TempDir())
	saves := []v1alpha1.RolloutStatus{
		{Phase: v1alpha1.PhaseProgressing}, // no check yet
		checked(1, check(1)),
		checked(1, check(1)), // the same check, saved again with a new phase
		checked(2, check(2)),
		checked(3, nil), // a check that measured nothing
	}
	saves[2].Phase = v1alpha1.PhasePaused
	for i, st := range saves {
		if err := s.SaveStatus(ctx, "web", nil, st, nil); err != nil {
			t.Fatalf("save %d: %v", i, err)
		}
	}
	// A save that fails (its command is not pending) keeps its samples out.
	if err := s.SaveStatus(ctx, "web", nil, checked(4, check(4)), nil, 999); err == nil {
		t.Fatal("a save consuming an unknown command succeeded")
	}
	got, err := s.Samples(ctx, "web", "error-rate", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	var times []time.Time
	for _, smp := range got {
		times = append(times, smp.At)
	}
	if want := []time.Time{checkAt(1), checkAt(2)}; !reflect.DeepEqual(times, want) {
		t.Errorf("error-rate samples at %v, want %v", times, want)
	}
}

func TestPrune(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, t.TempDir())
	for _, name := range []string{"web", "api"} {
		for sec := range 10 {
			ev := event(sec, fmt.Sprintf("E%d", sec), int32(sec))
			if err := s.SaveStatus(ctx, name, nil, checked(sec, check(1)[:1]), []v1alpha1.Event{ev}); err != nil {
				t.Fatal(err)
			}
		}
	}
	done, _ := s.EnqueueCommand(ctx, Command{Rollout: "web", Kind: "pause", At: at(0)})
	if err := s.SaveStatus(ctx, "web", nil, checked(9, check(1)[:1]), nil, done); err != nil {
		t.Fatal(err)
	}
	pending, _ := s.EnqueueCommand(ctx, Command{Rollout: "web", Kind: "promote", At: at(0)})

	// By count: the 4 most recent of each rollout stay.
	// Each rollout loses 6 of 10 events and samples.
	if n, err := s.Prune(ctx, 4, time.Time{}); err != nil || n != 2*(6+6) {
		t.Fatalf("Prune keeping 4 = %d, %v; want 24 rows deleted", n, err)
	}
	for _, name := range []string{"web", "api"} {
		evs, _ := s.Events(ctx, name, 0)
		if len(evs) != 4 || evs[0].Reason != "E6" || evs[3].Reason != "E9" {
			t.Errorf("%s events after keeping 4: %+v", name, evs)
		}
		smp, _ := s.Samples(ctx, name, "", time.Time{})
		if len(smp) != 4 || !smp[0].At.Equal(checkAt(6)) {
			t.Errorf("%s samples after keeping 4: %+v", name, smp)
		}
	}

	// By age: events and samples dated before 8s go.
	if _, err := s.Prune(ctx, 0, checkAt(8)); err != nil {
		t.Fatal(err)
	}
	if evs, _ := s.Events(ctx, "web", 0); len(evs) != 2 || evs[0].Reason != "E8" {
		t.Errorf("events after cutting at 8s: %+v", evs)
	}
	if smp, _ := s.Samples(ctx, "api", "", time.Time{}); len(smp) != 2 || !smp[0].At.Equal(checkAt(8)) {
		t.Errorf("samples after cutting at 8s: %+v", smp)
	}
	// Done commands are dated by when they were done; a pending command
	// stays however old it is.
	if _, err := s.Prune(ctx, 0, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	var doneLeft int
	if err := s.db.QueryRowContext(ctx, "SELECT count(*) FROM commands WHERE done_at IS NOT NULL").Scan(&doneLeft); err != nil {
		t.Fatal(err)
	}
	if doneLeft != 0 {
		t.Errorf("%d done commands survived a cut after they were done", doneLeft)
	}
	if cmds, _ := s.PendingCommands(ctx, "web"); len(cmds) != 1 || cmds[0].ID != pending {
		t.Errorf("prune touched the pending command: %+v", cmds)
	}
	if _, err := s.Rollout(ctx, "web"); err != nil {
		t.Errorf("prune touched the rollout: %v", err)
	}
}
