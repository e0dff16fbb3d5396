package target

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/rollout"
	"github.com/pipit-dev/pipit/internal/spec"
)

// Labels pipit puts on the objects it manages in Kubernetes, and the role
// values that tell the two copies of a workload apart.
const (
	// LabelRole is set to RoleStable or RoleCanary on a copy's selector and
	// pods and on the per-version Services' selectors.
	LabelRole = "pipit.dev/role"
	// LabelRollout names the Rollout that manages an object.
	LabelRollout = "pipit.dev/rollout"
	// LabelManagedBy is set to ManagedBy on everything pipit creates.
	LabelManagedBy = "app.kubernetes.io/managed-by"
	// ManagedBy is LabelManagedBy's value.
	ManagedBy = "pipit"
	// RoleStable and RoleCanary are LabelRole's values.
	RoleStable = "stable"
	RoleCanary = "canary"
)

// Annotations pipit keeps its state of the Kubernetes objects in, so it
// survives controller restarts.
const (
	// AnnotationTemplateHash on a copy is the TemplateHash of the pod
	// template it runs: the version's identity.
	AnnotationTemplateHash = "pipit.dev/template-hash"
	// AnnotationOriginalReplicas on the user's Deployment remembers its
	// replicas while pipit holds it at zero, for Release.
	AnnotationOriginalReplicas = "pipit.dev/original-replicas"
	// AnnotationWeight on the stable copy is the weight last set by the
	// replica router (ScaleForWeight), such as "12.5%".
	AnnotationWeight = "pipit.dev/weight"
)

var (
	// ErrTargetNotFound says the user's Deployment does not exist.
	ErrTargetNotFound = errors.New("target Deployment not found")
	// ErrNotReady says a step was carried out as far as it can be now and
	// waits for Kubernetes to roll something out: call again shortly. It is
	// no failure.
	ErrNotReady = errors.New("not ready yet")
)

// callTimeout bounds one method when the caller's context has no sooner
// deadline: a handful of calls to the API server.
const callTimeout = 30 * time.Second

// Deployment runs a Kubernetes rollout's versions as two copies of the
// user's Deployment (the target): the stable copy serves the stable version
// and the canary copy the canary, while the target itself is held at zero
// replicas. The user keeps editing the target; each new pod template is a
// new version (see Desired). Methods are idempotent desired states.
//
// This file holds the actions the runner takes; the copies, their
// replicas, the Services, the hand-over of the target and what is observed
// have a file each (deployment_*.go), and so has keeping the previous
// version warm after a promotion (deployment_warm.go).
type Deployment struct {
	c     client.Client
	owner *v1alpha1.Rollout
	plan  spec.KubePlan
	clock rollout.Clock
	log   *slog.Logger
}

// NewDeployment returns the target of the rollout owner, whose names plan
// resolves. Everything it creates is owned by owner, which must have been
// read from the API server (it needs its UID). clock times the undo
// window (nil for the wall clock).
func NewDeployment(c client.Client, owner *v1alpha1.Rollout, plan spec.KubePlan, clock rollout.Clock, log *slog.Logger) *Deployment {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Deployment{c: c, owner: owner, plan: plan, clock: rollout.ClockOrSystem(clock),
		log: log.With("rollout", owner.Name, "namespace", plan.Namespace)}
}

// Desired returns the version the user's Deployment describes now.
func (d *Deployment) Desired(ctx context.Context) (v1alpha1.VersionRef, error) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	t, err := d.target(ctx)
	if err != nil {
		return v1alpha1.VersionRef{}, err
	}
	return versionOf(&t.Spec.Template), nil
}

// Install makes v the stable version when there is nothing to compare it
// with: it creates the stable copy from the target's template, with the
// target's replicas, the Services and, when the target is autoscaled, an
// autoscaler for the stable copy. Once the stable copy is rolled out it
// holds the target at zero replicas, remembering its replicas for
// Release; until then it returns ErrNotReady and the target keeps serving,
// so taking a Deployment over drops no capacity.
func (d *Deployment) Install(ctx context.Context, v v1alpha1.VersionRef) error {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	t, tmpl, err := d.source(ctx, v)
	if err != nil {
		return err
	}
	if _, err := d.ensureHPA(ctx); err != nil {
		return err
	}
	stable, err := d.applyStable(ctx, t, tmpl, v, true)
	if err != nil {
		return err
	}
	if err := d.ensureServices(ctx, t); err != nil {
		return err
	}
	if replicasOf(t) == 0 {
		return nil
	}
	if !rolledOut(stable) {
		if reason, failed := progressFailed(stable); failed {
			return fmt.Errorf("the stable copy cannot roll out, so %s keeps serving: %s", d.name(d.plan.Target), reason)
		}
		return fmt.Errorf("waiting for Deployment %s to roll out before scaling %s down: %w",
			d.name(d.plan.StableWorkload), d.name(d.plan.Target), ErrNotReady)
	}
	return d.park(ctx)
}

// DeployCanary makes v run in the canary copy. v is the target's template,
// or, when the target changed again since, one the copies run or ran
// before; otherwise DeployCanary fails, as pipit cannot run a template it
// cannot read. The canary runs as many replicas as the stable copy (a
// full-size canary) or, with the replica router, the share of the weight
// last set (at least one). While the canary copy serves the stable
// version (see Promote), the stable copy takes it over first
// (consolidate), unless v is that version: a promotion re-applied.
func (d *Deployment) DeployCanary(ctx context.Context, v v1alpha1.VersionRef) error {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	t, tmpl, err := d.source(ctx, v)
	if err != nil {
		return err
	}
	stable, err := d.getCopy(ctx, d.plan.StableWorkload)
	if err != nil {
		return err
	}
	if stable == nil {
		return fmt.Errorf("deploy canary %s: Deployment %s does not exist: the rollout is not installed",
			v.Version, d.name(d.plan.StableWorkload))
	}
	if servingRole(stable) == RoleCanary {
		canary, err := d.getCopy(ctx, d.plan.CanaryWorkload)
		if err != nil {
			return err
		}
		if runs(canary, v) {
			return nil // a promotion of v re-applied after a restart: the copy serves it
		}
		// The canary copy serves the last promoted version: the stable
		// copy takes it over before the copy runs a new canary.
		if stable, err = d.consolidate(ctx, t, stable); err != nil {
			return err
		}
	}
	replicas := max(replicasOf(stable), 1)
	if w, weighted := d.weight(stable); weighted {
		_, replicas = splitReplicas(originalReplicas(t), w, true)
	}
	if _, err := d.applyCopy(ctx, t, copySpec{
		name: d.plan.CanaryWorkload, role: RoleCanary, template: tmpl, hash: v.Template, replicas: replicas,
	}); err != nil {
		return err
	}
	if err := d.ensureServices(ctx, t); err != nil {
		return err
	}
	return d.park(ctx)
}

// Promote makes v the stable version. With an undo window (see
// keepsWarm), when a copy runs v already it only switches the Services to
// that copy (see promoteBySwitch): the canary copy's version on a
// promotion, the warm previous version on an undo. Otherwise the stable
// copy runs v, which is the canary copy's template, the target's or one
// the copies ran before, at the target's replicas unless an autoscaler
// owns them.
func (d *Deployment) Promote(ctx context.Context, v v1alpha1.VersionRef) error {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	t, tmpl, err := d.source(ctx, v)
	if err != nil {
		return err
	}
	stable, err := d.getCopy(ctx, d.plan.StableWorkload)
	if err != nil {
		return err
	}
	if d.keepsWarm() {
		switched, err := d.promoteBySwitch(ctx, t, stable, v)
		if err != nil {
			return err
		}
		if switched {
			return d.park(ctx)
		}
	}
	if servingRole(stable) == RoleCanary {
		if _, err := d.consolidate(ctx, t, stable); err != nil {
			return err
		}
	}
	autoscaled, err := d.ensureHPA(ctx)
	if err != nil {
		return err
	}
	if _, err := d.applyStable(ctx, t, tmpl, v, autoscaled); err != nil {
		return err
	}
	return d.park(ctx)
}

// RetireCanary scales the canary copy to zero, keeping the object for the
// next canary; not while it serves the stable version, which it does
// after a promotion until the undo window passed (see RetireWarm).
func (d *Deployment) RetireCanary(ctx context.Context, v v1alpha1.VersionRef) error {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	stable, err := d.getCopy(ctx, d.plan.StableWorkload)
	if err != nil {
		return err
	}
	if servingRole(stable) == RoleCanary {
		d.log.Debug("the canary copy serves the stable version: not retired", "version", v.Version)
		return nil
	}
	if err := d.scaleToZero(ctx, d.plan.CanaryWorkload); err != nil {
		return fmt.Errorf("retire canary %s: %w", v.Version, err)
	}
	return nil
}

// scaleToZero scales one of the copies to zero replicas; a missing copy
// has none.
func (d *Deployment) scaleToZero(ctx context.Context, name string) error {
	err := d.modifyDeployment(ctx, name, func(dep *appsv1.Deployment) error {
		dep.Spec.Replicas = new(int32(0))
		return nil
	})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// source reads the target and finds v's pod template (see templateOf):
// what Install, DeployCanary and Promote write into a copy.
func (d *Deployment) source(ctx context.Context, v v1alpha1.VersionRef) (*appsv1.Deployment, *corev1.PodTemplateSpec, error) {
	t, err := d.target(ctx)
	if err != nil {
		return nil, nil, err
	}
	tmpl, err := d.templateOf(ctx, t, v.Template)
	if err != nil {
		return nil, nil, err
	}
	return t, tmpl, nil
}
