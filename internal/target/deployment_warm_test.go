package target

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/rollout"
	"github.com/pipit-dev/pipit/internal/spec"
	"github.com/pipit-dev/pipit/internal/testenv/fakeclock"
)

// warmFixture is a kubeFixture whose target keeps the previous version
// warm for an hour, timed by clock.
func warmFixture(t *testing.T) (*kubeFixture, *fakeclock.Clock) {
	t.Helper()
	f := newKubeFixture(t, spec.RouterGatewayAPI, webTarget("web:v1", 3))
	clock := fakeclock.New(time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC))
	plan := f.d.plan
	plan.UndoWindow = time.Hour
	f.d = NewDeployment(f.c, f.d.owner, plan, clock, nil)
	return f, clock
}

// wantServing fails unless the apex and stable Services select the copy
// with role, and Observe reports v as stable with no canary.
func (f *kubeFixture) wantServing(role string, v v1alpha1.VersionRef, apexRole string) {
	f.t.Helper()
	if got := f.service("web-stable").Spec.Selector[LabelRole]; got != role {
		f.t.Errorf("the stable Service selects role %q, want %q", got, role)
	}
	if got := f.service("web").Spec.Selector[LabelRole]; got != apexRole {
		f.t.Errorf("the apex Service selects role %q, want %q", got, apexRole)
	}
	if o := f.d.Observe(f.ctx); o.StableVersion != v.Template || o.CanaryVersion != "" {
		f.t.Errorf("Observe = %+v, want stable %s and no canary", o, v.Template)
	}
}

func TestPromotionSwitchesToTheCanaryCopyOnceItRolledOut(t *testing.T) {
	f, _ := warmFixture(t)
	v1 := f.install()
	v2 := f.deployCanary("web:v2")
	if err := f.d.Promote(f.ctx, v2); !errors.Is(err, ErrNotReady) {
		t.Fatalf("Promote before the canary copy rolled out = %v, want ErrNotReady", err)
	}
	if got := f.service("web-stable").Spec.Selector[LabelRole]; got != RoleStable {
		t.Errorf("the stable Service switched to %q before the canary copy was ready", got)
	}
	f.markRolledOut("web-canary")
	if err := f.d.Promote(f.ctx, v2); err != nil {
		t.Fatal(err)
	}
	f.wantServing(RoleCanary, v2, RoleCanary)
	if err := f.d.RetireCanary(f.ctx, v2); err != nil {
		t.Fatal(err)
	}
	f.wantReplicas("web-canary", 3)
	if got := f.deployment("web-stable").Annotations[AnnotationTemplateHash]; got != v1.Template {
		t.Errorf("the stable copy runs %s after the switch, want %s kept warm", got, v1.Template)
	}

	// A restarted controller reads the switch back from the stable copy.
	f.d = NewDeployment(f.c, f.d.owner, f.d.plan, f.d.clock, nil)
	f.wantServing(RoleCanary, v2, RoleCanary)

	// The undo switches back and scales the undone version down.
	if err := f.d.Promote(f.ctx, v1); err != nil {
		t.Fatal(err)
	}
	f.wantServing(RoleStable, v1, "")
	f.wantReplicas("web-canary", 0)
	f.wantReplicas("web-stable", 3)
}

func TestTheWarmVersionIsConsolidatedAfterTheWindow(t *testing.T) {
	f, clock := warmFixture(t)
	f.install()
	v2 := f.deployCanary("web:v2")
	f.markRolledOut("web-canary")
	if err := f.d.Promote(f.ctx, v2); err != nil {
		t.Fatal(err)
	}
	clock.Advance(59 * time.Minute)
	if err := f.d.RetireWarm(f.ctx); err != nil {
		t.Fatal(err)
	}
	f.wantServing(RoleCanary, v2, RoleCanary)

	clock.Advance(time.Minute)
	// The fake API server runs no Deployment controller: the stable
	// copy's status plays one that has not caught up with the new template.
	f.setStatus("web-stable", rolledOutStatus(1))
	if err := f.d.RetireWarm(f.ctx); !errors.Is(err, ErrNotReady) {
		t.Fatalf("RetireWarm while the stable copy rolls out = %v, want ErrNotReady", err)
	}
	if got := f.deployment("web-stable").Annotations[AnnotationTemplateHash]; got != v2.Template {
		t.Errorf("the stable copy rolls out %s, want the serving %s", got, v2.Template)
	}
	f.wantServing(RoleCanary, v2, RoleCanary) // the canary copy serves meanwhile
	f.markRolledOut("web-stable")
	if err := f.d.RetireWarm(f.ctx); err != nil {
		t.Fatal(err)
	}
	f.wantServing(RoleStable, v2, "")
	f.wantReplicas("web-canary", 0)
	if o := f.d.Observe(f.ctx); o.CanaryHealth != rollout.HealthUnknown {
		t.Errorf("after consolidation: Observe = %+v", o)
	}
}

func TestANewCanaryConsolidatesFirst(t *testing.T) {
	f, _ := warmFixture(t)
	f.install()
	v2 := f.deployCanary("web:v2")
	f.markRolledOut("web-canary")
	if err := f.d.Promote(f.ctx, v2); err != nil {
		t.Fatal(err)
	}
	v3 := f.setImage("web:v3")
	f.setStatus("web-stable", rolledOutStatus(1)) // see TestTheWarmVersionIsConsolidatedAfterTheWindow
	if err := f.d.DeployCanary(f.ctx, v3); !errors.Is(err, ErrNotReady) {
		t.Fatalf("DeployCanary while the canary copy serves = %v, want ErrNotReady until the stable copy took over", err)
	}
	if got := f.deployment("web-canary").Annotations[AnnotationTemplateHash]; got != v2.Template {
		t.Errorf("the serving canary copy was replaced by %s", got)
	}
	f.markRolledOut("web-stable")
	if err := f.d.DeployCanary(f.ctx, v3); err != nil {
		t.Fatal(err)
	}
	if got := f.deployment("web-canary").Annotations[AnnotationTemplateHash]; got != v3.Template {
		t.Errorf("the canary copy runs %s, want %s", got, v3.Template)
	}
	if got := f.service("web-stable").Spec.Selector[LabelRole]; got != RoleStable {
		t.Errorf("the stable Service selects %q, want the stable copy", got)
	}
	f.wantReplicas("web-canary", 3)
}

// TestIstioSubsetsKeepTheApexOnBothCopies: Istio routing by the subsets of
// a DestinationRule picks pods by their role through the apex Service, so
// the apex Service keeps selecting both copies, even in a blue-green
// rollout, and a promotion rolls the stable copy instead of switching.
func TestIstioSubsetsKeepTheApexOnBothCopies(t *testing.T) {
	f, _ := warmFixture(t)
	plan := f.d.plan
	plan.Router, plan.DestinationRule, plan.BlueGreen = spec.RouterIstio, "web-versions", true
	f.d = NewDeployment(f.c, f.d.owner, plan, f.d.clock, nil)
	f.install()
	v2 := f.deployCanary("web:v2")
	f.markRolledOut("web-canary")
	if got, ok := f.service("web").Spec.Selector[LabelRole]; ok {
		t.Errorf("the apex Service selects role %q, want both copies", got)
	}
	if err := f.d.Promote(f.ctx, v2); err != nil {
		t.Fatal(err)
	}
	if got := f.deployment("web-stable").Annotations[AnnotationTemplateHash]; got != v2.Template {
		t.Errorf("the stable copy runs %s after the promotion, want %s", got, v2.Template)
	}
	if got := f.service("web-stable").Spec.Selector[LabelRole]; got != RoleStable {
		t.Errorf("the stable Service selects role %q", got)
	}
}

// TestDeploymentPromoteOfTheStableAgainChangesNothing: the engine promotes the
// stable again when it re-applies an ended rollout; on the copies already
// serving it, that writes no Deployment and no Service, so no Pod rolls.
func TestDeploymentPromoteOfTheStableAgainChangesNothing(t *testing.T) {
	f, clock := warmFixture(t)
	v1 := f.install()
	v2 := f.deployCanary("web:v2")
	f.markRolledOut("web-canary")
	f.promoteTwice("after the promotion", v2)
	f.promoteTwice("after the undo", v1)
	f.wantServing(RoleStable, v1, "")

	// After the window, once the stable copy took the version over.
	v3 := f.deployCanary("web:v3")
	f.markRolledOut("web-canary")
	f.promoteTwice("after the promotion", v3)
	clock.Advance(time.Hour)
	f.setStatus("web-stable", rolledOutStatus(1))
	if err := f.d.RetireWarm(f.ctx); !errors.Is(err, ErrNotReady) {
		t.Fatalf("RetireWarm = %v, want ErrNotReady", err)
	}
	f.markRolledOut("web-stable")
	if err := f.d.RetireWarm(f.ctx); err != nil {
		t.Fatal(err)
	}
	f.promoteTwice("after consolidation", v3)
	f.wantServing(RoleStable, v3, "")
}

// TestDeploymentWithoutUndoWindowPromoteOfTheStableAgainChangesNothing:
// without an undo window the stable copy runs the promoted version, and
// promoting it again, after the promotion or after a later rollback,
// writes nothing either.
func TestDeploymentWithoutUndoWindowPromoteOfTheStableAgainChangesNothing(t *testing.T) {
	f := newKubeFixture(t, spec.RouterGatewayAPI, webTarget("web:v1", 3))
	f.install()
	v2 := f.deployCanary("web:v2")
	f.promoteTwice("after the promotion", v2)
	if err := f.d.RetireCanary(f.ctx, v2); err != nil {
		t.Fatal(err)
	}
	v3 := f.deployCanary("web:v3")
	if err := f.d.RetireCanary(f.ctx, v3); err != nil {
		t.Fatal(err)
	}
	f.promoteTwice("after a rollback", v2)
}

// promoteTwice promotes v, then fails unless promoting it again, as the
// engine's re-apply does, writes nothing.
func (f *kubeFixture) promoteTwice(when string, v v1alpha1.VersionRef) {
	f.t.Helper()
	if err := f.d.Promote(f.ctx, v); err != nil {
		f.t.Fatal(err)
	}
	before := f.resourceVersions()
	if err := f.d.Promote(f.ctx, v); err != nil {
		f.t.Fatal(err)
	}
	if after := f.resourceVersions(); after != before {
		f.t.Errorf("%s: promoting %s again wrote %s, was %s", when, v.Template, after, before)
	}
}

// resourceVersions is the resource versions of the copies and Services,
// which change with every write.
func (f *kubeFixture) resourceVersions() string {
	f.t.Helper()
	return strings.Join([]string{
		f.deployment("web-stable").ResourceVersion, f.deployment("web-canary").ResourceVersion,
		f.service("web").ResourceVersion, f.service("web-stable").ResourceVersion, f.service("web-canary").ResourceVersion,
	}, "/")
}
