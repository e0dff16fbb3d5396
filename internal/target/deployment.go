package target

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"maps"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/engine"
	"github.com/pipit-dev/pipit/internal/kubewrite"
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

// skippedAnnotations are the target's annotations not carried over to the
// copies: they describe the target object itself.
var skippedAnnotations = map[string]bool{
	corev1.LastAppliedConfigAnnotation:  true,
	"deployment.kubernetes.io/revision": true,
}

// ownerScheme maps the Rollout type to its group, version and kind for
// owner references.
var ownerScheme = func() *kruntime.Scheme {
	s := kruntime.NewScheme()
	utilruntime.Must(v1alpha1.AddToScheme(s))
	return s
}()

// Deployment runs a Kubernetes rollout's versions as two copies of the
// user's Deployment (the target): the stable copy serves the stable version
// and the canary copy the canary, while the target itself is held at zero
// replicas. The user keeps editing the target; each new pod template is a
// new version (see Desired). Methods are idempotent desired states.
type Deployment struct {
	c     client.Client
	owner *v1alpha1.Rollout
	plan  spec.KubePlan
	log   *slog.Logger
}

// NewDeployment returns the target of the rollout owner, whose names plan
// resolves. Everything it creates is owned by owner, which must have been
// read from the API server (it needs its UID).
func NewDeployment(c client.Client, owner *v1alpha1.Rollout, plan spec.KubePlan, log *slog.Logger) *Deployment {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Deployment{c: c, owner: owner, plan: plan, log: log.With("rollout", owner.Name, "namespace", plan.Namespace)}
}

// TemplateHash identifies a pod template: a short hash of its JSON form,
// ignoring the role label pipit adds to the copies and the
// pod-template-hash label the Deployment controller adds to ReplicaSets,
// so a copy's template hashes like the target's it came from.
func TemplateHash(t *corev1.PodTemplateSpec) string {
	c := t.DeepCopy()
	delete(c.Labels, LabelRole)
	delete(c.Labels, appsv1.DefaultDeploymentUniqueLabelKey)
	if len(c.Labels) == 0 {
		c.Labels = nil
	}
	// A pod template is plain data: it always marshals, with map keys
	// sorted, so equal templates give equal bytes.
	raw, _ := json.Marshal(c)
	h := fnv.New64a()
	h.Write(raw)
	return fmt.Sprintf("%016x", h.Sum64())[:10]
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

// versionOf names a pod template: its images for people, its hash as the
// identity.
func versionOf(t *corev1.PodTemplateSpec) v1alpha1.VersionRef {
	images := make([]string, len(t.Spec.Containers))
	for i, c := range t.Spec.Containers {
		images[i] = c.Image
	}
	return v1alpha1.VersionRef{Version: strings.Join(images, ","), Template: TemplateHash(t)}
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
// last set (at least one).
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

// Promote makes the stable copy run v, which is the canary copy's template
// (or the target's, or one the copies ran before, for an undo), at the
// target's replicas unless an autoscaler owns them.
func (d *Deployment) Promote(ctx context.Context, v v1alpha1.VersionRef) error {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	t, tmpl, err := d.source(ctx, v)
	if err != nil {
		return err
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
// next canary.
func (d *Deployment) RetireCanary(ctx context.Context, v v1alpha1.VersionRef) error {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	err := d.modifyDeployment(ctx, d.plan.CanaryWorkload, func(dep *appsv1.Deployment) error {
		dep.Spec.Replicas = new(int32(0))
		return nil
	})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("retire canary %s: %w", v.Version, err)
	}
	return nil
}

// Observe reports the canary copy's version and health and the version
// the stable copy serves once rolled out. Errors from the API server leave
// what they hide unknown.
func (d *Deployment) Observe(ctx context.Context) engine.Observed {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	o := engine.Observed{CanaryHealth: engine.HealthUnknown}
	canary, err := d.getCopy(ctx, d.plan.CanaryWorkload)
	switch {
	case err != nil:
		d.log.Debug("observe canary copy", "err", err)
	case canary != nil && replicasOf(canary) > 0:
		o.CanaryVersion = canary.Annotations[AnnotationTemplateHash]
		if rolledOut(canary) {
			o.CanaryHealth = engine.HealthUp
		} else if reason, failed := progressFailed(canary); failed {
			o.CanaryHealth, o.CanaryReason, o.CanaryFailed = engine.HealthDown, reason, true
		}
	}
	stable, err := d.getCopy(ctx, d.plan.StableWorkload)
	switch {
	case err != nil:
		d.log.Debug("observe stable copy", "err", err)
	case stable != nil && rolledOut(stable):
		o.StableVersion = stable.Annotations[AnnotationTemplateHash]
	}
	return o
}

// ScaleForWeight splits the target's replicas between the copies for the
// replica router, which has no traffic router to send w of the requests
// to the canary: the canary gets ceil(total × w) replicas, at least one
// while it runs, so it can become healthy at 0%; the stable copy the rest,
// at least one below 100%. A retired canary stays at zero. The weight is
// kept on the stable copy so DeployCanary sizes the next canary by it.
// An autoscaler owns the stable copy's replicas when the target has one.
func (d *Deployment) ScaleForWeight(ctx context.Context, w v1alpha1.Percent) error {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	t, err := d.target(ctx)
	if err != nil {
		return err
	}
	autoscaled, err := d.ensureHPA(ctx)
	if err != nil {
		return err
	}
	canary, err := d.getCopy(ctx, d.plan.CanaryWorkload)
	if err != nil {
		return err
	}
	live := canary != nil && replicasOf(canary) > 0
	stableN, canaryN := splitReplicas(originalReplicas(t), w, live)
	scaleStable := func() error {
		return d.modifyDeployment(ctx, d.plan.StableWorkload, func(dep *appsv1.Deployment) error {
			if dep.Annotations == nil {
				dep.Annotations = map[string]string{}
			}
			dep.Annotations[AnnotationWeight] = w.String()
			if !autoscaled {
				dep.Spec.Replicas = &stableN
			}
			return nil
		})
	}
	scaleCanary := func() error {
		if !live {
			return nil
		}
		return d.modifyDeployment(ctx, d.plan.CanaryWorkload, func(dep *appsv1.Deployment) error {
			dep.Spec.Replicas = &canaryN
			return nil
		})
	}
	// Grow before shrinking, so the total never dips below the target's.
	steps := []func() error{scaleStable, scaleCanary}
	if live && canaryN > replicasOf(canary) {
		steps = []func() error{scaleCanary, scaleStable}
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return fmt.Errorf("scale for weight %s: %w", w, err)
		}
	}
	return nil
}

// splitReplicas divides total replicas for weight w: the canary's share
// is ceil(total × w), at least one while the canary is live, the stable
// copy keeps the rest, at least one below 100%.
func splitReplicas(total int32, w v1alpha1.Percent, live bool) (stable, canary int32) {
	total = max(total, 1)
	if !live {
		return total, 0
	}
	w = min(max(w, 0), v1alpha1.FullWeight)
	share := int32((int64(total)*int64(w) + int64(v1alpha1.FullWeight) - 1) / int64(v1alpha1.FullWeight))
	stable = total - share
	if w < v1alpha1.FullWeight {
		stable = max(stable, 1)
	}
	return stable, max(share, 1)
}

// weight is the weight the replica router set last (0% before it set
// one), and whether the canary's replicas follow it: only with the
// replica router. A weight left by a replica router the rollout no longer
// uses does not count.
func (d *Deployment) weight(stable *appsv1.Deployment) (v1alpha1.Percent, bool) {
	if d.plan.Router != spec.RouterReplicas {
		return 0, false
	}
	s, ok := stable.Annotations[AnnotationWeight]
	if !ok {
		return 0, true
	}
	w, err := v1alpha1.ParsePercent(s)
	if err != nil {
		d.log.Warn("ignoring an unreadable weight annotation", "deployment", stable.Name, "value", s)
		return 0, true
	}
	return w, true
}

// Release hands the service back to the user's Deployment when the Rollout
// is deleted: it scales the target back to the replicas it had before
// pipit held it at zero. It returns ErrNotReady until the target is rolled
// out, so the caller keeps the copies (and their owner) until then; a
// target that cannot roll out (its progress deadline passed) is handed
// back as it is. The copies and Services are left to garbage collection.
func (d *Deployment) Release(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	t, err := d.target(ctx)
	if errors.Is(err, ErrTargetNotFound) {
		d.log.Info("nothing to release: the target is gone", "deployment", d.plan.Target)
		return nil
	}
	if err != nil {
		return err
	}
	if _, held := t.Annotations[AnnotationOriginalReplicas]; !held && replicasOf(t) > 0 {
		return d.releaseApexService(ctx) // never held at zero, or released already
	}
	restore, err := d.restoredReplicas(ctx, t)
	if err != nil {
		return err
	}
	// The annotation stays until the target rolled out: it says a
	// release is under way.
	err = d.modifyDeployment(ctx, d.plan.Target, func(dep *appsv1.Deployment) error {
		if replicasOf(dep) == 0 {
			dep.Spec.Replicas = &restore
			dep.Annotations = merged(dep.Annotations, map[string]string{AnnotationOriginalReplicas: strconv.Itoa(int(restore))})
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("release: %w", err)
	}
	if t, err = d.target(ctx); err != nil {
		return err
	}
	if !rolledOut(t) {
		reason, failed := progressFailed(t)
		if !failed {
			return fmt.Errorf("waiting for Deployment %s to roll out: %w", d.name(d.plan.Target), ErrNotReady)
		}
		d.log.Warn("handing back a Deployment that cannot roll out", "deployment", d.plan.Target, "reason", reason)
	}
	err = d.modifyDeployment(ctx, d.plan.Target, func(dep *appsv1.Deployment) error {
		delete(dep.Annotations, AnnotationOriginalReplicas)
		return nil
	})
	if err != nil {
		return fmt.Errorf("release: %w", err)
	}
	return d.releaseApexService(ctx)
}

// restoredReplicas is what Release gives the target back: the replicas
// remembered, else the stable copy's.
func (d *Deployment) restoredReplicas(ctx context.Context, t *appsv1.Deployment) (int32, error) {
	if n, ok := rememberedReplicas(t); ok {
		return n, nil
	}
	stable, err := d.getCopy(ctx, d.plan.StableWorkload)
	if err != nil {
		return 0, err
	}
	if stable != nil && replicasOf(stable) > 0 {
		return replicasOf(stable), nil
	}
	return 1, nil
}

// park holds the target at zero replicas, remembering the replicas it had:
// the copies serve in its place. A target scaled up again by the user is
// parked again, and its new replicas remembered.
func (d *Deployment) park(ctx context.Context) error {
	err := d.modifyDeployment(ctx, d.plan.Target, func(t *appsv1.Deployment) error {
		n := replicasOf(t)
		if n == 0 {
			return nil
		}
		if t.Annotations == nil {
			t.Annotations = map[string]string{}
		}
		t.Annotations[AnnotationOriginalReplicas] = strconv.Itoa(int(n))
		t.Spec.Replicas = new(int32(0))
		return nil
	})
	if err != nil {
		return fmt.Errorf("scale the target to zero: %w", err)
	}
	return nil
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

// applyStable makes the stable copy run tmpl, v's template, at the
// target's replicas; with keepReplicas an existing copy keeps its own, as
// an autoscaler sizes it.
func (d *Deployment) applyStable(ctx context.Context, t *appsv1.Deployment, tmpl *corev1.PodTemplateSpec,
	v v1alpha1.VersionRef, keepReplicas bool) (*appsv1.Deployment, error) {
	return d.applyCopy(ctx, t, copySpec{
		name: d.plan.StableWorkload, role: RoleStable, template: tmpl, hash: v.Template,
		replicas: originalReplicas(t), keepReplicas: keepReplicas,
	})
}

// copySpec is the desired state of one copy.
type copySpec struct {
	name, role string
	template   *corev1.PodTemplateSpec
	hash       string
	replicas   int32
	// keepReplicas leaves an existing copy's replicas alone: an autoscaler
	// or the replica router sizes it.
	keepReplicas bool
}

// applyCopy creates or updates a copy of the target t and returns it as
// written.
func (d *Deployment) applyCopy(ctx context.Context, t *appsv1.Deployment, cs copySpec) (*appsv1.Deployment, error) {
	out, _, err := kubewrite.CreateOrUpdate(ctx, d.c, &appsv1.Deployment{ObjectMeta: d.meta(cs.name)}, func(dep *appsv1.Deployment) error {
		return d.shapeCopy(dep, t, cs)
	})
	if err != nil {
		return nil, fmt.Errorf("write Deployment %s: %w", d.name(cs.name), err)
	}
	return out, nil
}

// shapeCopy sets the fields of a copy that pipit owns; the ones it does
// not set (the revision annotation, status) stay as they are.
func (d *Deployment) shapeCopy(dep, t *appsv1.Deployment, cs copySpec) error {
	exists := dep.ResourceVersion != ""
	if exists && !d.ours(dep) {
		return fmt.Errorf("it exists and is not managed by rollout %s: rename it, or name the copies in spec.kubernetes", d.owner.Name)
	}
	dep.Labels = merged(dep.Labels, t.Labels, d.labels())
	dep.Annotations = merged(dep.Annotations, carriedAnnotations(t.Annotations),
		map[string]string{AnnotationTemplateHash: cs.hash})
	if err := controllerutil.SetControllerReference(d.owner, dep, ownerScheme); err != nil {
		return err
	}
	sel, err := roleSelector(t.Spec.Selector, cs.role)
	if err != nil {
		return err
	}
	switch {
	case dep.Spec.Selector == nil:
		dep.Spec.Selector = sel
	case !equality.Semantic.DeepEqual(dep.Spec.Selector, sel):
		return fmt.Errorf("its selector %v differs from the target's plus role %s, and selectors cannot change: delete it",
			metav1.FormatLabelSelector(dep.Spec.Selector), cs.role)
	}
	tmpl := cs.template.DeepCopy()
	delete(tmpl.Labels, appsv1.DefaultDeploymentUniqueLabelKey)
	tmpl.Labels = merged(tmpl.Labels, map[string]string{LabelRole: cs.role})
	dep.Spec.Template = *tmpl
	if !exists || !cs.keepReplicas {
		dep.Spec.Replicas = new(cs.replicas)
	}
	dep.Spec.Strategy = *t.Spec.Strategy.DeepCopy()
	dep.Spec.MinReadySeconds = t.Spec.MinReadySeconds
	dep.Spec.RevisionHistoryLimit = t.Spec.RevisionHistoryLimit
	dep.Spec.ProgressDeadlineSeconds = t.Spec.ProgressDeadlineSeconds
	dep.Spec.Paused = false
	return nil
}

// roleSelector is the target's selector narrowed to one role.
func roleSelector(s *metav1.LabelSelector, role string) (*metav1.LabelSelector, error) {
	if s == nil || len(s.MatchLabels) == 0 {
		return nil, errors.New("the target's selector has no matchLabels, which the Services need to select its pods")
	}
	out := s.DeepCopy()
	out.MatchLabels[LabelRole] = role
	return out, nil
}

// templateOf finds the pod template whose hash is hash: the target's, a
// copy's, or one a copy ran before (kept in its ReplicaSets), which is how
// an undo finds the previous stable version.
func (d *Deployment) templateOf(ctx context.Context, t *appsv1.Deployment, hash string) (*corev1.PodTemplateSpec, error) {
	if TemplateHash(&t.Spec.Template) == hash {
		return &t.Spec.Template, nil
	}
	for _, name := range []string{d.plan.CanaryWorkload, d.plan.StableWorkload} {
		dep, err := d.getCopy(ctx, name)
		if err != nil {
			return nil, err
		}
		if dep != nil && dep.Annotations[AnnotationTemplateHash] == hash {
			return &dep.Spec.Template, nil
		}
	}
	var sets appsv1.ReplicaSetList
	if err := d.c.List(ctx, &sets, client.InNamespace(d.plan.Namespace), client.MatchingLabels(t.Spec.Selector.MatchLabels)); err != nil {
		return nil, fmt.Errorf("list ReplicaSets in %s: %w", d.plan.Namespace, err)
	}
	for i := range sets.Items {
		rs := &sets.Items[i]
		owner := metav1.GetControllerOf(rs)
		if owner == nil || owner.Kind != "Deployment" || (owner.Name != d.plan.StableWorkload && owner.Name != d.plan.CanaryWorkload) {
			continue
		}
		if TemplateHash(&rs.Spec.Template) == hash {
			return &rs.Spec.Template, nil
		}
	}
	return nil, fmt.Errorf("pod template %s is gone: the target's template changed again (it is now %s), so roll that one out instead",
		hash, TemplateHash(&t.Spec.Template))
}

// ensureHPA gives the stable copy an autoscaler like the target's, when
// the target has one, and removes it when the target no longer has one.
// It reports whether the stable copy is autoscaled.
func (d *Deployment) ensureHPA(ctx context.Context) (bool, error) {
	var list autoscalingv2.HorizontalPodAutoscalerList
	if err := d.c.List(ctx, &list, client.InNamespace(d.plan.Namespace)); err != nil {
		return false, fmt.Errorf("list HorizontalPodAutoscalers in %s: %w", d.plan.Namespace, err)
	}
	var user, mine *autoscalingv2.HorizontalPodAutoscaler
	for i := range list.Items {
		h := &list.Items[i]
		switch {
		case h.Name == d.plan.StableWorkload && d.ours(h):
			mine = h
		case scalesDeployment(h, d.plan.Target):
			user = h
		}
	}
	if user == nil {
		if mine != nil {
			if err := kubewrite.DeleteIfPresent(ctx, d.c, mine); err != nil {
				return false, fmt.Errorf("delete HorizontalPodAutoscaler %s: %w", d.name(mine.Name), err)
			}
			d.log.Info("the target is no longer autoscaled; removed the stable copy's autoscaler")
		}
		return false, nil
	}
	fresh := &autoscalingv2.HorizontalPodAutoscaler{ObjectMeta: d.meta(d.plan.StableWorkload)}
	_, _, err := kubewrite.CreateOrUpdate(ctx, d.c, fresh, func(h *autoscalingv2.HorizontalPodAutoscaler) error {
		if h.ResourceVersion != "" && !d.ours(h) {
			return fmt.Errorf("it exists and is not managed by rollout %s", d.owner.Name)
		}
		h.Labels = merged(h.Labels, d.labels())
		if err := controllerutil.SetControllerReference(d.owner, h, ownerScheme); err != nil {
			return err
		}
		h.Spec = *user.Spec.DeepCopy()
		h.Spec.ScaleTargetRef = autoscalingv2.CrossVersionObjectReference{
			APIVersion: appsv1.SchemeGroupVersion.String(), Kind: "Deployment", Name: d.plan.StableWorkload,
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("write HorizontalPodAutoscaler %s: %w", d.name(d.plan.StableWorkload), err)
	}
	return true, nil
}

// scalesDeployment reports whether h scales the Deployment name.
func scalesDeployment(h *autoscalingv2.HorizontalPodAutoscaler, name string) bool {
	ref := h.Spec.ScaleTargetRef
	group, _, _ := strings.Cut(ref.APIVersion, "/")
	return ref.Kind == "Deployment" && ref.Name == name && (ref.APIVersion == "" || group == appsv1.GroupName)
}

// target reads the user's Deployment.
func (d *Deployment) target(ctx context.Context) (*appsv1.Deployment, error) {
	var t appsv1.Deployment
	err := d.c.Get(ctx, d.key(d.plan.Target), &t)
	if apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("%w: %s", ErrTargetNotFound, d.name(d.plan.Target))
	}
	if err != nil {
		return nil, fmt.Errorf("get Deployment %s: %w", d.name(d.plan.Target), err)
	}
	return &t, nil
}

// getCopy reads one of the copies; nil when it does not exist.
func (d *Deployment) getCopy(ctx context.Context, name string) (*appsv1.Deployment, error) {
	var dep appsv1.Deployment
	err := d.c.Get(ctx, d.key(name), &dep)
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get Deployment %s: %w", d.name(name), err)
	}
	return &dep, nil
}

// modifyDeployment applies change to a Deployment and writes it back when
// it changed, retrying on conflicts. A missing Deployment's error is
// NotFound (see apierrors.IsNotFound).
func (d *Deployment) modifyDeployment(ctx context.Context, name string, change func(*appsv1.Deployment) error) error {
	_, _, err := kubewrite.Update(ctx, d.c, &appsv1.Deployment{ObjectMeta: d.meta(name)}, change)
	if err != nil {
		return fmt.Errorf("Deployment %s: %w", d.name(name), err)
	}
	return nil
}

// ours reports whether pipit manages obj for this rollout.
func (d *Deployment) ours(obj metav1.Object) bool {
	l := obj.GetLabels()
	return l[LabelManagedBy] == ManagedBy && l[LabelRollout] == d.owner.Name
}

// labels are the labels of everything pipit creates for the rollout.
func (d *Deployment) labels() map[string]string {
	return map[string]string{LabelManagedBy: ManagedBy, LabelRollout: d.owner.Name}
}

func (d *Deployment) meta(name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, Namespace: d.plan.Namespace}
}

func (d *Deployment) key(name string) types.NamespacedName {
	return types.NamespacedName{Namespace: d.plan.Namespace, Name: name}
}

// name is an object's namespace/name, for errors.
func (d *Deployment) name(name string) string { return d.plan.Namespace + "/" + name }

// merged returns dst with every later map's entries set on it, later ones
// winning; dst may be nil.
func merged(dst map[string]string, srcs ...map[string]string) map[string]string {
	if dst == nil {
		dst = map[string]string{}
	}
	for _, s := range srcs {
		maps.Copy(dst, s)
	}
	return dst
}

// carriedAnnotations are the target's annotations a copy takes over, so
// dashboards and tools that read them keep working.
func carriedAnnotations(a map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range a {
		if !skippedAnnotations[k] && !strings.HasPrefix(k, "pipit.dev/") {
			out[k] = v
		}
	}
	return out
}

// replicasOf is a Deployment's desired replicas (the API's default is 1).
func replicasOf(dep *appsv1.Deployment) int32 {
	if dep.Spec.Replicas == nil {
		return 1
	}
	return *dep.Spec.Replicas
}

// rememberedReplicas reads the replicas pipit took from the target.
func rememberedReplicas(t *appsv1.Deployment) (int32, bool) {
	s, ok := t.Annotations[AnnotationOriginalReplicas]
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 32)
	if err != nil || n < 0 {
		return 0, false
	}
	return int32(n), true
}

// originalReplicas is how many replicas the service runs: the target's
// before pipit held it at zero, at least one.
func originalReplicas(t *appsv1.Deployment) int32 {
	if n, ok := rememberedReplicas(t); ok {
		return max(n, 1)
	}
	return max(replicasOf(t), 1)
}

// rolledOut reports whether a Deployment runs its current template on all
// its replicas, all available, and nothing else: what `kubectl rollout
// status` waits for, with at least one replica.
func rolledOut(dep *appsv1.Deployment) bool {
	want, s := replicasOf(dep), dep.Status
	return want > 0 && s.ObservedGeneration >= dep.Generation &&
		s.UpdatedReplicas == want && s.Replicas == want && s.AvailableReplicas == want
}

// progressFailed reports a Deployment whose current template did not
// progress within its progress deadline, and the controller's message.
func progressFailed(dep *appsv1.Deployment) (string, bool) {
	if dep.Status.ObservedGeneration < dep.Generation {
		return "", false // the condition may describe the previous template
	}
	for _, c := range dep.Status.Conditions {
		if c.Type == appsv1.DeploymentProgressing && c.Status == corev1.ConditionFalse && c.Reason == "ProgressDeadlineExceeded" {
			return fmt.Sprintf("Deployment %s: %s", dep.Name, c.Message), true
		}
	}
	return "", false
}
