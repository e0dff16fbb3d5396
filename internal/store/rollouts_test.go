package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/testenv/fakeclock"
)

func fullStatus() v1alpha1.RolloutStatus {
	// MicroTime keeps microseconds in JSON, so the times here have none finer.
	t := metav1.NewMicroTime(time.Date(2026, 7, 1, 12, 0, 0, 123456000, time.UTC))
	return v1alpha1.RolloutStatus{
		ObservedGeneration: 4,
		Phase:              v1alpha1.PhaseProgressing,
		Message:            "canary at 2.5%",
		Stable:             &v1alpha1.VersionRef{Version: "v1", URL: "http://127.0.0.1:9001"},
		Canary:             &v1alpha1.VersionRef{Version: "v2", URL: "http://127.0.0.1:9002"},
		CurrentStep:        2,
		CanaryWeight:       v1alpha1.PercentOf(2.5),
		StartedAt:          &t,
		StepStartedAt:      &t,
		Analysis: v1alpha1.AnalysisStatus{
			LastCheckAt:  &t,
			PassedChecks: 3,
			LastResults: []v1alpha1.MetricResult{
				{Name: "error-rate", Canary: ptr(0.5), Stable: ptr(0.25), Verdict: v1alpha1.VerdictSuccessful},
			},
		},
		Conditions: []metav1.Condition{{Type: "Ready", Status: metav1.ConditionTrue, Reason: "Progressing",
			LastTransitionTime: metav1.NewTime(time.Date(2026, 7, 1, 12, 0, 0, 0, time.UTC))}},
	}
}

// sameJSON compares statuses by their JSON, which is what is stored: a
// decoded metav1 time is in the local zone, so reflect.DeepEqual would
// report a difference where there is none.
func sameJSON(t *testing.T, got, want any) {
	t.Helper()
	g, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	w, err := json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(g, w) {
		t.Errorf("got  %s\nwant %s", g, w)
	}
}

func TestRolloutRoundTrip(t *testing.T) {
	ctx := context.Background()
	clock := fakeclock.New(at(0).In(time.FixedZone("CEST", 2*60*60)))
	s := openStoreWith(t, t.TempDir(), Options{Clock: clock})
	spec := []byte("apiVersion: pipit.dev/v1alpha1\nkind: Rollout\n# comments are kept\n")
	if err := s.SaveStatus(ctx, "web", spec, fullStatus(), nil); err != nil {
		t.Fatal(err)
	}
	r, err := s.Rollout(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	if r.Name != "web" || !bytes.Equal(r.Spec, spec) {
		t.Errorf("record = %q %q", r.Name, r.Spec)
	}
	sameJSON(t, r.Status, fullStatus())
	if !r.UpdatedAt.Equal(at(0)) || r.UpdatedAt.Location() != time.UTC {
		t.Errorf("UpdatedAt = %v, want the clock's %v in UTC", r.UpdatedAt, at(0))
	}

	// A second save replaces spec and status and keeps the events.
	if err := s.SaveStatus(ctx, "web", spec, fullStatus(), []v1alpha1.Event{event(1, "Started", 0)}); err != nil {
		t.Fatal(err)
	}
	next := fullStatus()
	next.Phase = v1alpha1.PhaseSucceeded
	if err := s.SaveStatus(ctx, "web", []byte("v2"), next, nil); err != nil {
		t.Fatal(err)
	}
	r, err = s.Rollout(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	if string(r.Spec) != "v2" || r.Status.Phase != v1alpha1.PhaseSucceeded {
		t.Errorf("after update: spec %q phase %s", r.Spec, r.Status.Phase)
	}
	if evs, _ := s.Events(ctx, "web", 0); len(evs) != 1 {
		t.Errorf("an upsert lost events: %d left, want 1", len(evs))
	}
}

func TestRolloutNotFound(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, t.TempDir())
	if _, err := s.Rollout(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Rollout: err = %v, want ErrNotFound", err)
	}
	if err := s.SaveStatus(ctx, "", nil, v1alpha1.RolloutStatus{}, nil); err == nil {
		t.Error("SaveStatus with an empty name succeeded")
	}
}

func TestRolloutsSortedByName(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, t.TempDir())
	for _, name := range []string{"web", "api", "mobile"} {
		if err := s.SaveStatus(ctx, name, nil, v1alpha1.RolloutStatus{Message: name}, nil); err != nil {
			t.Fatal(err)
		}
	}
	rs, err := s.Rollouts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range rs {
		names = append(names, r.Name)
		if r.Status.Message != r.Name {
			t.Errorf("%s has the status of %s", r.Name, r.Status.Message)
		}
	}
	if want := []string{"api", "mobile", "web"}; !reflect.DeepEqual(names, want) {
		t.Errorf("names = %v, want %v", names, want)
	}
}

func TestEventsOrderAndLimit(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, t.TempDir())
	var all []v1alpha1.Event
	// Times out of order: insertion order, not time, is the order kept.
	for i, sec := range []int{5, 3, 9, 1, 7} {
		e := event(sec, fmt.Sprintf("E%d", i), int32(i))
		all = append(all, e)
		if err := s.SaveStatus(ctx, "web", nil, v1alpha1.RolloutStatus{}, []v1alpha1.Event{e}); err != nil {
			t.Fatal(err)
		}
	}
	// Several events in one save keep their order too.
	batch := []v1alpha1.Event{event(2, "E5", 5), event(2, "E6", 6)}
	all = append(all, batch...)
	if err := s.SaveStatus(ctx, "web", nil, v1alpha1.RolloutStatus{}, batch); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveStatus(ctx, "other", nil, v1alpha1.RolloutStatus{}, []v1alpha1.Event{event(1, "Other", 0)}); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		limit int
		want  []v1alpha1.Event
	}{
		{0, all},
		{-1, all},
		{3, all[4:]},
		{1, all[6:]},
		{100, all},
	} {
		got, err := s.Events(ctx, "web", tc.limit)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("limit %d:\ngot  %+v\nwant %+v", tc.limit, got, tc.want)
		}
	}
	if got, err := s.Events(ctx, "missing", 0); err != nil || len(got) != 0 {
		t.Errorf("events of a missing rollout = %v, %v", got, err)
	}
}
