package kube

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/hook"
	"github.com/pipit-dev/pipit/internal/telemetry"
	"github.com/pipit-dev/pipit/internal/testenv/kubefixture"
)

// unitReconciler is a Reconciler over a fake API server, for tests of the
// rollouts' lifetimes that never reach a cluster.
func unitReconciler(t *testing.T) *Reconciler {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	c := fake.NewClientBuilder().WithScheme(Scheme()).Build()
	rc := &Reconciler{
		Client: c, Direct: c, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		metrics: telemetry.New(prometheus.NewRegistry()), ctx: ctx,
	}
	t.Cleanup(rc.stopAll)
	return rc
}

// unitRollout is a valid Rollout name of generation 1 in namespace shop;
// spec is added to a one-step strategy, as YAML indented by two spaces.
func unitRollout(t *testing.T, name, spec string) *v1alpha1.Rollout {
	t.Helper()
	r, err := kubefixture.ParseRollout(kubefixture.RolloutYAML(name, "  strategy: {steps: [{setWeight: 10}]}\n"+spec))
	if err != nil {
		t.Fatal(err)
	}
	r.Namespace, r.Generation, r.UID = "shop", 1, types.UID(name+"-uid")
	return r
}

// slowEndpoint is a webhook endpoint that answers each request after
// delay, counting the requests it answered.
func slowEndpoint(t *testing.T, delay time.Duration) (url string, answered *atomic.Int32) {
	t.Helper()
	answered = &atomic.Int32{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		time.Sleep(delay)
		answered.Add(1)
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/hook", answered
}

// notifying is the spec of a rollout notifying url of every event.
func notifying(url string) string {
	return "  notifications: [{type: webhook, url: " + url + ", severity: info}]\n"
}

func notifyOnce(m *managed, name string) {
	ev := v1alpha1.Event{Time: metav1.NowMicro(), Type: v1alpha1.EventNormal, Reason: "Installed", Message: "Installed v1", Phase: v1alpha1.PhaseIdle}
	m.notifier.SendAll(name, v1alpha1.RolloutStatus{Phase: v1alpha1.PhaseIdle}, []v1alpha1.Event{ev})
}

// TestStopDeliversQueuedNotifications: a notification sent just before a
// rollout stops reaches its endpoint before stop returns, whether the
// rollout is forgotten (deleted) or the controller shuts down with it.
func TestStopDeliversQueuedNotifications(t *testing.T) {
	t.Run("forget", func(t *testing.T) {
		rc := unitReconciler(t)
		url, answered := slowEndpoint(t, 200*time.Millisecond)
		r := unitRollout(t, "web", notifying(url))
		m, err := rc.managedFor(r)
		if err != nil {
			t.Fatal(err)
		}
		notifyOnce(m, r.Name)
		rc.forget(types.NamespacedName{Namespace: r.Namespace, Name: r.Name})
		if n := answered.Load(); n != 1 {
			t.Errorf("the endpoint answered %d notifications when stop returned, want 1", n)
		}
	})
	t.Run("shutdown", func(t *testing.T) {
		rc := unitReconciler(t)
		url, answered := slowEndpoint(t, 200*time.Millisecond)
		for _, name := range []string{"web", "api"} {
			m, err := rc.managedFor(unitRollout(t, name, notifying(url)))
			if err != nil {
				t.Fatal(err)
			}
			notifyOnce(m, name)
		}
		rc.stopAll()
		if n := answered.Load(); n != 2 {
			t.Errorf("the endpoint answered %d notifications when the controller stopped, want 2", n)
		}
	})
}

// TestSlowHookDoesNotBlockOtherRollouts: while a rollout rebuilt for a new
// spec waits for its old runner's hook, which ignores cancellation, the
// reconciles of other rollouts go on.
func TestSlowHookDoesNotBlockOtherRollouts(t *testing.T) {
	rc := unitReconciler(t)
	hooked := unitRollout(t, "web", "  webhooks: [{name: slow, type: confirm-rollout, url: http://127.0.0.1:1/}]\n")
	m, err := rc.managedFor(hooked)
	if err != nil {
		t.Fatal(err)
	}
	other := unitRollout(t, "api", "")
	if _, err := rc.managedFor(other); err != nil {
		t.Fatal(err)
	}
	cancelled, release := make(chan struct{}), make(chan struct{})
	m.hooks.Run = func(ctx context.Context, _ v1alpha1.WebhookSpec, _ hook.Payload) hook.Result {
		<-ctx.Done()
		close(cancelled)
		<-release // a slow hook: it does not stop when asked to
		return hook.Result{OK: true}
	}
	m.hooks.Start(v1alpha1.HookConfirmRollout, 1, m.runner.Status)

	edited := hooked.DeepCopy()
	edited.Generation = 2
	rebuilt := make(chan error, 1)
	go func() {
		_, err := rc.managedFor(edited)
		rebuilt <- err
	}()
	<-cancelled // the old runner is stopping, waiting for its hook
	reconciled := make(chan error, 1)
	go func() {
		_, err := rc.managedFor(other)
		reconciled <- err
	}()
	blocked := false
	select {
	case err := <-reconciled:
		if err != nil {
			t.Error(err)
		}
	case <-time.After(5 * time.Second):
		blocked = true
		t.Error("another rollout's reconcile waited for the slow hook of the rollout being rebuilt")
	}
	close(release)
	if blocked {
		<-reconciled
	}
	if err := <-rebuilt; err != nil {
		t.Fatal(err)
	}
}

// A goal counted in Prometheus that names no address, where the
// controller has no --prometheus-url, stalls its rollout with the field
// and both ways out named.
func TestGoalWithoutPrometheusStalls(t *testing.T) {
	rc := unitReconciler(t)
	r := unitRollout(t, "shop", `
  analysis:
    goals:
      - name: checkout
        prometheus: {visitors: "sum(v)", conversions: "sum(c)"}
    metrics:
      - name: conversion-rate
        thresholdRange: {min: 1}
`)
	_, err := rc.managedFor(r)
	want := "spec.analysis.goals[0].prometheus.address: goal checkout is counted by queries, which the controller reads from Prometheus; start pipit controller with --prometheus-url, or give the goal an address"
	if _, ok := errors.AsType[*noPrometheusError](err); !ok || err.Error() != want {
		t.Errorf("err %v\nwant %s", err, want)
	}
	rc.PrometheusURL = "http://127.0.0.1:9090"
	if _, err := rc.managedFor(r); err != nil {
		t.Errorf("with --prometheus-url: %v", err)
	}
}
