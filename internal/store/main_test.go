package store

import (
	"context"
	"os"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pipit-dev/pipit/api/v1alpha1"
)

// TestMain lets the crash test re-run this binary as a writer that it
// kills; see crash_test.go.
func TestMain(m *testing.M) {
	if dir := os.Getenv(crashHelperEnv); dir != "" {
		os.Exit(runCrashWriter(dir))
	}
	os.Exit(m.Run())
}

// openStore opens a store in dir and closes it when the test ends.
func openStore(t *testing.T, dir string) *Store {
	t.Helper()
	return openStoreWith(t, dir, Options{})
}

// openStoreWith opens a store in dir with opts and closes it when the
// test ends.
func openStoreWith(t *testing.T, dir string, opts Options) *Store {
	t.Helper()
	s, err := Open(context.Background(), dir, opts)
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// at is a fixed time with nanoseconds, so tests see any loss of precision.
func at(sec int) time.Time {
	return time.Date(2026, 7, 1, 12, 0, sec, 123456789, time.UTC)
}

func event(sec int, reason string, step int32) v1alpha1.Event {
	return v1alpha1.Event{
		Time:    metav1.NewMicroTime(at(sec)),
		Type:    v1alpha1.EventNormal,
		Reason:  reason,
		Message: reason + " happened",
		Phase:   v1alpha1.PhaseProgressing,
		Step:    step,
		Weight:  v1alpha1.PercentOf(2.5),
		Actor:   "pipit",
	}
}

// checkAt is the time a sample of a check made at at(sec) keeps: the
// status it comes with keeps microseconds.
func checkAt(sec int) time.Time { return at(sec).Truncate(time.Microsecond) }

// checked is a status that carries an analysis check made at at(sec)
// with results, as the runner saves it after the check.
func checked(sec int, results []v1alpha1.MetricResult) v1alpha1.RolloutStatus {
	when := metav1.NewMicroTime(at(sec))
	return v1alpha1.RolloutStatus{Analysis: v1alpha1.AnalysisStatus{LastCheckAt: &when, LastResults: results}}
}

func ptr[T any](v T) *T { return &v }
