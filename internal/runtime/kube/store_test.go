package kube

import (
	"context"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/testenv/kubefixture"
)

// countingClient counts the reads it passes on.
type countingClient struct {
	client.Client
	gets atomic.Int64
}

func (c *countingClient) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	c.gets.Add(1)
	return c.Client.Get(ctx, key, obj, opts...)
}

// TestStatusStoreWritesWithoutReadingAndKeepsOthersWrites: a save starts
// from the store's own last write, without reading the Rollout again; when
// someone else wrote the Rollout in between, the API server refuses the
// stale write and the retry keeps what they wrote.
func TestStatusStoreWritesWithoutReadingAndKeepsOthersWrites(t *testing.T) {
	e := kubefixture.New(t)
	e.CreateRollout("store", "  strategy: {steps: [{setWeight: 10}]}\n")
	c := &countingClient{Client: e.Client}
	s := &statusStore{c: c, key: e.Key("store"), generation: 1}
	event := func(reason string) []v1alpha1.Event {
		return []v1alpha1.Event{{Time: metav1.NowMicro(), Type: v1alpha1.EventNormal, Reason: reason, Message: reason, Phase: v1alpha1.PhaseProgressing}}
	}

	save := func(phase v1alpha1.Phase, reason string) {
		t.Helper()
		if err := s.Save(e.Ctx(), v1alpha1.RolloutStatus{Phase: phase}, event(reason), nil); err != nil {
			t.Fatal(err)
		}
	}
	save(v1alpha1.PhaseIdle, "Installed")
	if n := c.gets.Load(); n != 1 {
		t.Errorf("the first save read the Rollout %d times, want once", n)
	}
	save(v1alpha1.PhaseProgressing, "Deployed")
	save(v1alpha1.PhaseProgressing, "WeightChanged")
	if n := c.gets.Load(); n != 1 {
		t.Errorf("saves of a Rollout nobody else wrote read it %d times in all, want once", n)
	}

	// A person labels the Rollout.
	r := e.Rollout("store")
	r.Labels = map[string]string{"team": "shop"}
	if err := e.Client.Update(e.Ctx(), r); err != nil {
		t.Fatal(err)
	}
	save(v1alpha1.PhaseProgressing, "Checked")
	if n := c.gets.Load(); n != 2 {
		t.Errorf("a save after another writer read the Rollout %d times in all, want 2", n)
	}
	saved := e.Rollout("store")
	got := saved.Status
	if got.Phase != v1alpha1.PhaseProgressing || saved.Labels["team"] != "shop" {
		t.Errorf("after the save: phase %s, labels %v; want Progressing with the label kept", got.Phase, saved.Labels)
	}
	var reasons []string
	for _, ev := range got.History {
		reasons = append(reasons, ev.Reason)
	}
	if want := []string{"Installed", "Deployed", "WeightChanged", "Checked"}; !slices.Equal(reasons, want) {
		t.Errorf("history %v, want %v", reasons, want)
	}
}

// TestStatusStoreKeepsTargets: status.targets is written when it changed
// only, and an engine's save, whose status knows nothing of it, keeps it.
func TestStatusStoreKeepsTargets(t *testing.T) {
	e := kubefixture.New(t)
	e.CreateRollout("store", "  strategy: {steps: [{setWeight: 10}]}\n")
	s := &statusStore{c: e.Client, key: e.Key("store"), generation: 1}
	targets := []v1alpha1.TargetStatus{{Name: "frontend", StableRevision: "aaa", StableReady: 2}, {Name: "backend"}}
	if err := s.saveTargets(e.Ctx(), targets); err != nil {
		t.Fatal(err)
	}
	written := e.Rollout("store").ResourceVersion
	if err := s.saveTargets(e.Ctx(), slices.Clone(targets)); err != nil {
		t.Fatal(err)
	}
	if rv := e.Rollout("store").ResourceVersion; rv != written {
		t.Errorf("unchanged targets were written again (resourceVersion %s, then %s)", written, rv)
	}
	if err := s.Save(e.Ctx(), v1alpha1.RolloutStatus{Phase: v1alpha1.PhaseProgressing}, nil, nil); err != nil {
		t.Fatal(err)
	}
	if got := e.Rollout("store").Status; got.Phase != v1alpha1.PhaseProgressing || !slices.Equal(got.Targets, targets) {
		t.Errorf("after a save: phase %s, targets %+v; want Progressing with %+v", got.Phase, got.Targets, targets)
	}
}

// TestWithCheckKeepsTheLastChecks: a check joins the ring once, however
// often the status is saved before the next, without its messages and
// with the API server's microseconds; a reset analysis adds nothing; the
// ring keeps the last maxRecentChecks, oldest first.
func TestWithCheckKeepsTheLastChecks(t *testing.T) {
	start := time.Date(2026, 12, 7, 1, 0, 0, 123456789, time.UTC)
	analysisAt := func(i int) v1alpha1.AnalysisStatus {
		at := metav1.NewMicroTime(start.Add(time.Duration(i) * time.Minute))
		canary, stable := float64(i), 99.5
		return v1alpha1.AnalysisStatus{LastCheckAt: &at, LastResults: []v1alpha1.MetricResult{{
			Name: "latency", Canary: &canary, Stable: &stable, Verdict: v1alpha1.VerdictSuccessful, Message: "latency within max 250ms",
		}}}
	}
	var ring []v1alpha1.AnalysisCheck
	ring = withCheck(ring, analysisAt(0))
	ring = withCheck(ring, analysisAt(0))
	ring = withCheck(ring, v1alpha1.AnalysisStatus{})
	if len(ring) != 1 {
		t.Fatalf("one check saved twice and a reset analysis: %d checks kept, want 1", len(ring))
	}
	r := ring[0].Results[0]
	if r.Message != "" || *r.Canary != 0 || *r.Stable != 99.5 || r.Verdict != v1alpha1.VerdictSuccessful {
		t.Errorf("kept %+v, want the values and verdict without the message", r)
	}
	if want := start.Truncate(time.Microsecond); !ring[0].At.Time.Equal(want) {
		t.Errorf("kept at %s, want %s", ring[0].At.Time, want)
	}
	for i := 1; i < maxRecentChecks+10; i++ {
		ring = withCheck(ring, analysisAt(i))
	}
	if len(ring) != maxRecentChecks {
		t.Fatalf("%d checks kept, want the last %d", len(ring), maxRecentChecks)
	}
	if first, last := *ring[0].Results[0].Canary, *ring[len(ring)-1].Results[0].Canary; first != 10 || last != maxRecentChecks+9 {
		t.Errorf("kept checks %v to %v, want 10 to %d", first, last, maxRecentChecks+9)
	}
	if older := withCheck(ring, analysisAt(3)); len(older) != maxRecentChecks || *older[len(older)-1].Results[0].Canary != maxRecentChecks+9 {
		t.Errorf("a check older than the latest kept was added")
	}
}
