package deploymenttest

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"testing"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/spec"
	"github.com/pipit-dev/pipit/internal/target"
	"github.com/pipit-dev/pipit/internal/testenv/fakeclock"
)

// undoWindow is the warm tests' spec.undoWindow.
const undoWindow = 10 * time.Minute

// warmEnv is an env whose target keeps the previous version warm for
// undoWindow, timed by clock; with blueGreen it is a blue-green rollout
// with the preview Service web-preview.
type warmEnv struct {
	*env
	clock *fakeclock.Clock
}

func newWarmEnv(t *testing.T, replicas int32, blueGreen bool) *warmEnv {
	t.Helper()
	e := &warmEnv{env: newEnv(t, webDeployment("registry.example/web:v1", replicas, 600), nil),
		clock: fakeclock.New(time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC))}
	r := e.rollout.DeepCopy()
	if blueGreen {
		r.Spec.Strategy.BlueGreen = &v1alpha1.BlueGreenStrategy{PreviewService: "web-preview"}
	}
	kp := spec.ResolveKubernetes(r)
	kp.UndoWindow = undoWindow
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	e.d = target.NewDeployment(e.Client, e.rollout, kp, e.clock, log)
	e.Eventually("the user's Deployment rolls out", func(ctx context.Context) error { return e.rolledOut(ctx, "web", replicas) })
	return e
}

// reaches fails unless service reaches the n pods of the copy with role
// alone.
func (e *env) reaches(ctx context.Context, service, role string, n int) error {
	return e.ServiceReaches(ctx, service, map[string]string{target.LabelRole: role}, n)
}

// wantSelector fails unless Service name selects the role's pods.
func (e *env) wantSelector(name, role string) {
	e.T.Helper()
	var svc corev1.Service
	if err := e.Client.Get(e.Ctx(), e.Key(name), &svc); err != nil {
		e.T.Fatalf("Service %s: %v", name, err)
	}
	want := map[string]string{"app": "web"}
	if role != "" {
		want[target.LabelRole] = role
	}
	if !maps.Equal(svc.Spec.Selector, want) {
		e.T.Errorf("Service %s selects %v, want %v", name, svc.Spec.Selector, want)
	}
}

// wantStable fails unless Observe reports v as the stable version and no
// canary.
func (e *env) wantStable(ctx context.Context, v v1alpha1.VersionRef) error {
	if o := e.d.Observe(ctx); o.StableVersion != v.Template || o.CanaryVersion != "" {
		return fmt.Errorf("Observe = %+v, want stable %s and no canary", o, v.Template)
	}
	return nil
}

// ownedByTheRollout fails unless Service name is pipit's, owned by the
// Rollout.
func (e *env) ownedByTheRollout(name string) {
	e.T.Helper()
	var svc corev1.Service
	if err := e.Client.Get(e.Ctx(), e.Key(name), &svc); err != nil {
		e.T.Fatalf("Service %s: %v", name, err)
	}
	owner := metav1.GetControllerOf(&svc)
	if owner == nil || owner.UID != e.rollout.UID || svc.Labels[target.LabelManagedBy] != target.ManagedBy {
		e.T.Errorf("Service %s: owner %+v, labels %v", name, owner, svc.Labels)
	}
}

func TestBlueGreenKeepsThePreviousVersionWarm(t *testing.T) {
	e := newWarmEnv(t, 3, true)
	v1 := e.installWarm()
	v2 := e.setImage(func(p *corev1.PodSpec) { p.Containers[0].Image = "registry.example/web:v2" })
	e.previewBlueGreen(v2)
	e.promoteBySwitch(v2, 3)
	e.undoBySwitch(v1, 3)

	// Promoted again, the version is consolidated into the stable copy
	// once the window passed.
	e.previewBlueGreen(v2)
	e.promoteBySwitch(v2, 3)
	e.consolidateAfterTheWindow(v2, 3)
}

func TestCanaryWithTheReplicaRouterKeepsThePreviousVersionWarm(t *testing.T) {
	e := newWarmEnv(t, 4, false)
	v1 := e.installWarm()
	v2 := e.setImage(func(p *corev1.PodSpec) { p.Containers[0].Image = "registry.example/web:v2" })
	if err := e.d.DeployCanary(e.Ctx(), v2); err != nil {
		t.Fatal(err)
	}
	if err := e.d.ScaleForWeight(e.Ctx(), v1alpha1.PercentOf(50)); err != nil {
		t.Fatal(err)
	}
	e.Eventually("half the replicas run the canary", func(ctx context.Context) error {
		if err := e.rolledOut(ctx, "web-stable", 2); err != nil {
			return err
		}
		return e.rolledOut(ctx, "web-canary", 2)
	})
	e.promoteBySwitch(v2, 4)
	e.undoBySwitch(v1, 4)
}

// installWarm installs v1: the stable copy serves it behind the apex and
// stable Services; the preview Service, when there is one, is pipit's and
// selects the (absent) canary copy.
func (e *warmEnv) installWarm() v1alpha1.VersionRef {
	t := e.T
	t.Helper()
	v1, err := e.d.Desired(e.Ctx())
	if err != nil {
		t.Fatal(err)
	}
	e.untilReady("Install", func(ctx context.Context) error { return e.d.Install(ctx, v1) })
	if err := e.d.EnsureServices(e.Ctx()); err != nil { // as every tick of the controller does
		t.Fatal(err)
	}
	e.wantSelector("web-stable", target.RoleStable)
	if e.Found("web-preview", &corev1.Service{}) {
		e.wantSelector("web-preview", target.RoleCanary)
		e.ownedByTheRollout("web-preview")
		e.wantSelector("web", target.RoleStable) // the target is held at zero: the apex needs no role-less pods
	} else {
		e.wantSelector("web", "")
	}
	return v1
}

// previewBlueGreen runs v2 in the canary copy, full size, at 0%: the
// preview Service reaches it alone, the apex and stable Services the
// stable copy alone.
func (e *warmEnv) previewBlueGreen(v2 v1alpha1.VersionRef) {
	t := e.T
	t.Helper()
	if err := e.d.DeployCanary(e.Ctx(), v2); err != nil {
		t.Fatal(err)
	}
	if err := e.d.ScaleForWeight(e.Ctx(), 0); err != nil {
		t.Fatal(err)
	}
	e.Eventually("the preview is up", func(ctx context.Context) error { return wantCanaryUp(e.d.Observe(ctx), v2) })
	if got := *e.Deployment("web-canary").Spec.Replicas; got != 3 {
		t.Errorf("the preview runs %d replicas, want the stable copy's 3", got)
	}
	e.Eventually("the preview Service reaches the new version alone, the others the old one", func(ctx context.Context) error {
		for svc, role := range map[string]string{"web-preview": target.RoleCanary, "web": target.RoleStable, "web-stable": target.RoleStable} {
			if err := e.reaches(ctx, svc, role, 3); err != nil {
				return err
			}
		}
		return nil
	})
}

// promoteBySwitch promotes v2 as the engine does (100%, Promote, then 0%
// and RetireCanary): the apex and stable Services switch to the canary
// copy's n pods, and no pod nor ReplicaSet is created; the stable copy
// keeps the previous version's n pods running.
func (e *warmEnv) promoteBySwitch(v2 v1alpha1.VersionRef, n int32) {
	t := e.T
	t.Helper()
	if err := e.d.ScaleForWeight(e.Ctx(), v1alpha1.FullWeight); err != nil {
		t.Fatal(err)
	}
	e.Eventually("both copies run full size", func(ctx context.Context) error {
		if err := e.rolledOut(ctx, "web-stable", n); err != nil {
			return err
		}
		return e.rolledOut(ctx, "web-canary", n)
	})
	before := e.PodsAndReplicaSets()
	e.untilReady("Promote", func(ctx context.Context) error { return e.d.Promote(ctx, v2) })
	if err := e.wantStable(e.Ctx(), v2); err != nil {
		t.Fatalf("promoted: %v", err)
	}
	for _, step := range []func() error{
		func() error { return e.d.ScaleForWeight(e.Ctx(), 0) },
		func() error { return e.d.RetireCanary(e.Ctx(), v2) },
	} {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	e.wantSelector("web-stable", target.RoleCanary)
	e.wantSelector("web", target.RoleCanary)
	e.Eventually("the apex and stable Services reach the canary copy alone", func(ctx context.Context) error {
		if err := e.reaches(ctx, "web", target.RoleCanary, int(n)); err != nil {
			return err
		}
		return e.reaches(ctx, "web-stable", target.RoleCanary, int(n))
	})
	// The switch's record on the stable copy is a new generation of it
	// (annotations are), which its controller observes in a moment.
	e.Eventually("both copies keep running full size", func(ctx context.Context) error {
		if err := e.rolledOut(ctx, "web-stable", n); err != nil {
			return err
		}
		return e.rolledOut(ctx, "web-canary", n)
	})
	// A restarted controller re-applies the promotion in flight: the
	// canary and the promotion of v2 again change nothing.
	for _, step := range []func(context.Context, v1alpha1.VersionRef) error{e.d.DeployCanary, e.d.Promote} {
		if err := step(e.Ctx(), v2); err != nil {
			t.Fatalf("re-applied: %v", err)
		}
	}
	e.wantSelector("web-stable", target.RoleCanary)
	e.NothingCreatedSince(before, "the promotion")

	// Inside the window nothing changes.
	e.clock.Advance(undoWindow - time.Minute)
	if err := e.d.RetireWarm(e.Ctx()); err != nil {
		t.Fatal(err)
	}
	e.wantSelector("web-stable", target.RoleCanary)
	e.NothingCreatedSince(before, "RetireWarm inside the undo window")
}

// undoBySwitch undoes the promotion as the engine does (Promote of the
// previous version, then 0%): the Services switch back to the stable
// copy's n pods, which never stopped, the undone canary is scaled down,
// and no pod nor ReplicaSet is created.
func (e *warmEnv) undoBySwitch(v1 v1alpha1.VersionRef, n int32) {
	t := e.T
	t.Helper()
	before := e.PodsAndReplicaSets()
	if err := e.d.Promote(e.Ctx(), v1); err != nil {
		t.Fatalf("undo: %v", err)
	}
	if err := e.d.ScaleForWeight(e.Ctx(), 0); err != nil {
		t.Fatal(err)
	}
	e.wantSelector("web-stable", target.RoleStable)
	e.Eventually("the stable Service reaches the warm pods again, the canary copy none", func(ctx context.Context) error {
		if err := e.wantStable(ctx, v1); err != nil {
			return err
		}
		if err := e.reaches(ctx, "web-stable", target.RoleStable, int(n)); err != nil {
			return err
		}
		if names, err := e.PodNames(ctx, map[string]string{target.LabelRole: target.RoleCanary}); err != nil || len(names) > 0 {
			return fmt.Errorf("canary pods %v (%v)", names, err)
		}
		return e.rolledOut(ctx, "web-stable", n)
	})
	images, err := e.podImages(e.Ctx(), map[string]string{target.LabelRole: target.RoleStable})
	if err != nil || !maps.Equal(images, map[string]int{v1.Version: int(n)}) {
		t.Errorf("stable pods run %v (%v), want %d of %s", images, err, n, v1.Version)
	}
	e.NothingCreatedSince(before, "the undo")
}

// consolidateAfterTheWindow lets the undo window pass: the stable copy
// rolls out the promoted version v2, the Services switch back to it and
// the canary copy is scaled down.
func (e *warmEnv) consolidateAfterTheWindow(v2 v1alpha1.VersionRef, n int32) {
	t := e.T
	t.Helper()
	e.clock.Advance(2 * time.Minute)
	e.untilReady("RetireWarm", e.d.RetireWarm)
	e.wantSelector("web-stable", target.RoleStable)
	e.wantSelector("web", target.RoleStable)
	e.Eventually("the stable copy serves the promoted version, the canary copy nothing", func(ctx context.Context) error {
		// Observe reads the copies as the client's cache has them, which
		// may not have seen the consolidation's last write yet.
		if err := e.wantStable(ctx, v2); err != nil {
			return err
		}
		images, err := e.podImages(ctx, map[string]string{target.LabelRole: target.RoleStable})
		if err == nil && !maps.Equal(images, map[string]int{v2.Version: int(n)}) {
			return fmt.Errorf("stable pods run %v", images)
		}
		if d := e.Deployment("web-canary"); *d.Spec.Replicas != 0 || d.Status.Replicas != 0 {
			return fmt.Errorf("canary copy: spec %d, status %+v", *d.Spec.Replicas, d.Status)
		}
		return e.reaches(ctx, "web", target.RoleStable, int(n))
	})
	if err := e.d.RetireWarm(e.Ctx()); err != nil {
		t.Errorf("RetireWarm with nothing warm: %v", err)
	}
}

// TestTheAutoscalerFollowsTheServingCopy: while the canary copy serves
// the promoted version, the stable copy's autoscaler scales it, and the
// stable copy takes its replicas over when the window closes.
func TestTheAutoscalerFollowsTheServingCopy(t *testing.T) {
	e := newWarmEnv(t, 2, true)
	e.Create(&autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "web"},
			MinReplicas:    new(int32(2)),
			MaxReplicas:    5,
		},
	})
	e.installWarm()
	v2 := e.setImage(func(p *corev1.PodSpec) { p.Containers[0].Image = "registry.example/web:v2" })
	if err := e.d.DeployCanary(e.Ctx(), v2); err != nil {
		t.Fatal(err)
	}
	e.promoteBySwitch(v2, 2)
	e.wantScaled("web-canary")

	// The user raises the minimum; a promotion re-applied copies it.
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var h autoscalingv2.HorizontalPodAutoscaler
		if err := e.Client.Get(e.Ctx(), e.Key("web"), &h); err != nil {
			return err
		}
		h.Spec.MinReplicas = new(int32(4))
		return e.Client.Update(e.Ctx(), &h)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.d.Promote(e.Ctx(), v2); err != nil {
		t.Fatal(err)
	}
	e.Eventually("the autoscaler scales the serving copy alone", func(ctx context.Context) error {
		if err := e.rolledOut(ctx, "web-canary", 4); err != nil {
			return err
		}
		return e.rolledOut(ctx, "web-stable", 2)
	})

	e.clock.Advance(2 * time.Minute)
	e.untilReady("RetireWarm", e.d.RetireWarm)
	e.wantScaled("web-stable")
	if err := e.rolledOut(e.Ctx(), "web-stable", 4); err != nil {
		t.Errorf("the stable copy after the window: %v", err)
	}
	e.Eventually("the serving copy's pods all reached by the stable Service", func(ctx context.Context) error {
		return e.reaches(ctx, "web-stable", target.RoleStable, 4)
	})
}

// wantScaled fails unless pipit's autoscaler scales the copy name.
func (e *env) wantScaled(name string) {
	e.T.Helper()
	var h autoscalingv2.HorizontalPodAutoscaler
	if err := e.Client.Get(e.Ctx(), e.Key("web-stable"), &h); err != nil {
		e.T.Fatalf("pipit's autoscaler: %v", err)
	}
	if got := h.Spec.ScaleTargetRef.Name; got != name {
		e.T.Errorf("pipit's autoscaler scales %s, want %s", got, name)
	}
}
