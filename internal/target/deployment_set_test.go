package target

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/rollout"
)

// fakeWorkload records the calls a DeploymentSet makes and answers as
// told.
type fakeWorkload struct {
	name     string
	desired  v1alpha1.VersionRef
	observed rollout.Observed
	err      error
	calls    *[]string
}

func (f *fakeWorkload) record(call string, v v1alpha1.VersionRef) error {
	*f.calls = append(*f.calls, fmt.Sprintf("%s %s %s", f.name, call, v.Template))
	return f.err
}

func (f *fakeWorkload) Install(_ context.Context, v v1alpha1.VersionRef) error {
	return f.record("install", v)
}

func (f *fakeWorkload) DeployCanary(_ context.Context, v v1alpha1.VersionRef) error {
	return f.record("canary", v)
}

func (f *fakeWorkload) Promote(_ context.Context, v v1alpha1.VersionRef) error {
	return f.record("promote", v)
}

func (f *fakeWorkload) RetireCanary(_ context.Context, v v1alpha1.VersionRef) error {
	return f.record("retire", v)
}

func (f *fakeWorkload) Observe(context.Context) rollout.Observed { return f.observed }

func (f *fakeWorkload) Desired(context.Context) (v1alpha1.VersionRef, error) { return f.desired, f.err }

func (f *fakeWorkload) EnsureServices(context.Context) error {
	return f.record("services", v1alpha1.VersionRef{})
}

func (f *fakeWorkload) RetireWarm(context.Context) error {
	return f.record("warm", v1alpha1.VersionRef{})
}

func (f *fakeWorkload) Release(context.Context) error {
	return f.record("release", v1alpha1.VersionRef{})
}

func (f *fakeWorkload) State(context.Context) v1alpha1.TargetStatus {
	return v1alpha1.TargetStatus{Name: f.name, StableRevision: f.observed.StableVersion}
}

// newFakeSet returns a set of frontend and backend and the log of their
// calls.
func newFakeSet() (*DeploymentSet, *fakeWorkload, *fakeWorkload, *[]string) {
	calls := &[]string{}
	fe := &fakeWorkload{name: "frontend", desired: v1alpha1.VersionRef{Template: "aaa", Version: "web:2"}, calls: calls}
	be := &fakeWorkload{name: "backend", desired: v1alpha1.VersionRef{Template: "bbb", Version: "api:1,sidecar:1"}, calls: calls}
	return NewDeploymentSet([]string{"frontend", "backend"}, []Workload{fe, be}), fe, be, calls
}

// TestDeploymentSetVersions checks that the set's version is made of
// each Deployment's, in order, and that each action gets each
// Deployment's own part.
func TestDeploymentSetVersions(t *testing.T) {
	set, _, _, calls := newFakeSet()
	v, err := set.Desired(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	want := v1alpha1.VersionRef{Template: "aaa.bbb", Version: "frontend=web:2; backend=api:1,sidecar:1"}
	if !reflect.DeepEqual(v, want) {
		t.Fatalf("desired %+v, want %+v", v, want)
	}
	parts, err := set.parts(v)
	if err != nil || !reflect.DeepEqual(parts[1], v1alpha1.VersionRef{Template: "bbb", Version: "api:1,sidecar:1"}) {
		t.Errorf("parts %+v, %v", parts, err)
	}
	for _, act := range []func(context.Context, v1alpha1.VersionRef) error{set.Install, set.DeployCanary, set.Promote, set.RetireCanary} {
		if err := act(t.Context(), v); err != nil {
			t.Fatal(err)
		}
	}
	wantCalls := []string{"frontend install aaa", "backend install bbb", "frontend canary aaa", "backend canary bbb",
		"frontend promote aaa", "backend promote bbb", "frontend retire aaa", "backend retire bbb"}
	if !reflect.DeepEqual(*calls, wantCalls) {
		t.Errorf("calls %q\nwant %q", *calls, wantCalls)
	}
	err = set.Promote(t.Context(), v1alpha1.VersionRef{Template: "aaa", Version: "web:2"})
	if err == nil || !strings.Contains(err.Error(), "templates of 1 Deployments, and the rollout rolls out 2 (frontend, backend)") {
		t.Errorf("a version of another list of Deployments: %v", err)
	}
}

// TestDeploymentSetFailures checks that every Deployment is acted on even
// when one fails, that the error names the failing one, and that a wait
// for one is no failure unless another failed.
func TestDeploymentSetFailures(t *testing.T) {
	set, fe, be, calls := newFakeSet()
	v := v1alpha1.VersionRef{Template: "aaa.bbb"}
	fe.err = errors.New("the API server refused")
	be.err = fmt.Errorf("rolling out: %w", ErrNotReady)
	err := set.Promote(t.Context(), v)
	if len(*calls) != 2 {
		t.Errorf("calls %q: the backend was not promoted after the frontend failed", *calls)
	}
	if err == nil || !strings.Contains(err.Error(), "Deployment frontend: the API server refused") || errors.Is(err, ErrNotReady) {
		t.Errorf("one failed, one waits: %v", err)
	}
	fe.err = nil
	if err := set.Release(t.Context()); !errors.Is(err, ErrNotReady) || !strings.Contains(err.Error(), "Deployment backend") {
		t.Errorf("one waits: %v", err)
	}
	fe.err, be.err = nil, errors.New("gone")
	if _, err := set.Desired(t.Context()); err == nil || !strings.Contains(err.Error(), "Deployment backend: gone") {
		t.Errorf("desired with one failing: %v", err)
	}
}

// setObservations are the Deployments' observations and what the set
// makes of them.
var setObservations = []struct {
	name   string
	fe, be rollout.Observed
	want   rollout.Observed
}{{
	name: "both up",
	fe:   rollout.Observed{CanaryVersion: "a2", CanaryHealth: rollout.HealthUp, StableVersion: "a1"},
	be:   rollout.Observed{CanaryVersion: "b2", CanaryHealth: rollout.HealthUp, StableVersion: "b1"},
	want: rollout.Observed{CanaryVersion: "a2.b2", CanaryHealth: rollout.HealthUp, StableVersion: "a1.b1"},
}, {
	name: "one not up yet",
	fe:   rollout.Observed{CanaryVersion: "a2", CanaryHealth: rollout.HealthUp, StableVersion: "a1"},
	be:   rollout.Observed{CanaryVersion: "b2", StableVersion: "b1"},
	want: rollout.Observed{CanaryVersion: "a2.b2", StableVersion: "a1.b1"},
}, {
	name: "one failed",
	fe:   rollout.Observed{CanaryVersion: "a2", StableVersion: "a1"},
	be:   rollout.Observed{CanaryVersion: "b2", CanaryHealth: rollout.HealthDown, CanaryFailed: true, CanaryReason: "b stuck", StableVersion: "b1"},
	want: rollout.Observed{CanaryVersion: "a2.b2", CanaryHealth: rollout.HealthDown, CanaryFailed: true, CanaryReason: "b stuck", StableVersion: "a1.b1"},
}, {
	name: "one canary and one stable unknown",
	fe:   rollout.Observed{StableVersion: "a1"},
	be:   rollout.Observed{CanaryVersion: "b2", CanaryHealth: rollout.HealthUp},
	want: rollout.Observed{},
}}

// TestDeploymentSetObserve checks how the Deployments' observations make
// the set's.
func TestDeploymentSetObserve(t *testing.T) {
	for _, tc := range setObservations {
		t.Run(tc.name, func(t *testing.T) {
			set, fe, be, _ := newFakeSet()
			fe.observed, be.observed = tc.fe, tc.be
			if got := set.Observe(t.Context()); got != tc.want {
				t.Errorf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
	set, fe, be, _ := newFakeSet()
	fe.observed.StableVersion, be.observed.StableVersion = "a1", "b1"
	if got := set.States(t.Context()); len(got) != 2 || got[0].Name != "frontend" || got[1].StableRevision != "b1" {
		t.Errorf("states %+v", got)
	}
}

// TestDeploymentSetOfOne checks that a set of one Deployment is that
// Deployment: same versions, same errors.
func TestDeploymentSetOfOne(t *testing.T) {
	calls := &[]string{}
	only := &fakeWorkload{name: "web", desired: v1alpha1.VersionRef{Template: "aaa", Version: "web:2"}, calls: calls,
		observed: rollout.Observed{CanaryVersion: "aaa", CanaryHealth: rollout.HealthDown, CanaryReason: "crash", StableVersion: "zzz"}}
	set := NewDeploymentSet([]string{"web"}, []Workload{only})
	if v, err := set.Desired(t.Context()); err != nil || !reflect.DeepEqual(v, only.desired) {
		t.Errorf("desired %+v, %v", v, err)
	}
	if got := set.Observe(t.Context()); got != only.observed {
		t.Errorf("observed %+v, want %+v", got, only.observed)
	}
	if err := set.Holds(v1alpha1.VersionRef{Template: "aaa.bbb"}); err == nil || !strings.Contains(err.Error(), "rolls out 1 (web)") {
		t.Errorf("a set of one holding a version of two: %v", err)
	}
	only.err = ErrNotReady
	if err := set.Promote(t.Context(), only.desired); err != ErrNotReady {
		t.Errorf("promote: %v, want ErrNotReady itself", err)
	}
}
