package target

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/rollout"
)

// Workload is one Deployment's target as a DeploymentSet drives it: the
// runner's actions, and what the controller does around them. Deployment
// is one.
type Workload interface {
	rollout.Target
	// Desired returns the version the user's Deployment describes now.
	Desired(ctx context.Context) (v1alpha1.VersionRef, error)
	// EnsureServices writes the Services of the versions.
	EnsureServices(ctx context.Context) error
	// RetireWarm stops keeping the previous version warm once the undo
	// window passed.
	RetireWarm(ctx context.Context) error
	// Release hands the service back to the user's Deployment.
	Release(ctx context.Context) error
	// State reports what the copies run, for the status.
	State(ctx context.Context) v1alpha1.TargetStatus
}

// Separators of a set's version: the pod-template hashes of its
// Deployments, in order, joined by templateSep make the set's template;
// "name=images" of each, joined by versionSep, its label.
const (
	templateSep = "."
	versionSep  = "; "
)

// DeploymentSet runs the versions of several Deployments that are rolled
// out together (spec.targetRefs): a version of the set is one pod
// template of each, and every action is carried out on each Deployment,
// in the spec's order. Each one is tried even when another failed, so a
// rollback reaches them all; the call fails when any of them did, and the
// runner tries again. A set of one Deployment is that Deployment, with
// its versions and errors unchanged.
type DeploymentSet struct {
	names     []string
	workloads []Workload
}

// NewDeploymentSet returns the set of the workloads named names (the
// Deployments' names, for versions and errors), in that order.
func NewDeploymentSet(names []string, workloads []Workload) *DeploymentSet {
	return &DeploymentSet{names: names, workloads: workloads}
}

// Desired returns the set's version the Deployments describe now.
func (s *DeploymentSet) Desired(ctx context.Context) (v1alpha1.VersionRef, error) {
	refs := make([]v1alpha1.VersionRef, len(s.workloads))
	err := s.each(func(i int, w Workload) (err error) {
		refs[i], err = w.Desired(ctx)
		return err
	})
	if err != nil {
		return v1alpha1.VersionRef{}, err
	}
	return s.join(refs), nil
}

// Install installs each Deployment's part of v.
func (s *DeploymentSet) Install(ctx context.Context, v v1alpha1.VersionRef) error {
	return s.eachPart(v, func(w Workload, part v1alpha1.VersionRef) error { return w.Install(ctx, part) })
}

// DeployCanary runs each Deployment's part of v as its canary, also
// where that part is the Deployment's stable version: the Deployments
// move through the steps together.
func (s *DeploymentSet) DeployCanary(ctx context.Context, v v1alpha1.VersionRef) error {
	return s.eachPart(v, func(w Workload, part v1alpha1.VersionRef) error { return w.DeployCanary(ctx, part) })
}

// Promote makes each Deployment's part of v its stable version.
func (s *DeploymentSet) Promote(ctx context.Context, v v1alpha1.VersionRef) error {
	return s.eachPart(v, func(w Workload, part v1alpha1.VersionRef) error { return w.Promote(ctx, part) })
}

// RetireCanary retires each Deployment's canary.
func (s *DeploymentSet) RetireCanary(ctx context.Context, v v1alpha1.VersionRef) error {
	return s.eachPart(v, func(w Workload, part v1alpha1.VersionRef) error { return w.RetireCanary(ctx, part) })
}

// EnsureServices writes each Deployment's Services.
func (s *DeploymentSet) EnsureServices(ctx context.Context) error {
	return s.each(func(_ int, w Workload) error { return w.EnsureServices(ctx) })
}

// RetireWarm stops keeping each Deployment's previous version warm once
// the undo window passed.
func (s *DeploymentSet) RetireWarm(ctx context.Context) error {
	return s.each(func(_ int, w Workload) error { return w.RetireWarm(ctx) })
}

// Release hands each Deployment back to the user.
func (s *DeploymentSet) Release(ctx context.Context) error {
	return s.each(func(_ int, w Workload) error { return w.Release(ctx) })
}

// States reports what each Deployment's copies run, in order.
func (s *DeploymentSet) States(ctx context.Context) []v1alpha1.TargetStatus {
	out := make([]v1alpha1.TargetStatus, len(s.workloads))
	for i, w := range s.workloads {
		out[i] = w.State(ctx)
	}
	return out
}

// Observe reports the set's canary and stable versions, known when known
// for every Deployment. The canary is up when every Deployment's is, and
// down when one is down (failed for good first), with its reason.
func (s *DeploymentSet) Observe(ctx context.Context) rollout.Observed {
	o := rollout.Observed{CanaryHealth: rollout.HealthUp}
	canary := make([]string, len(s.workloads))
	stable := make([]string, len(s.workloads))
	for i, w := range s.workloads {
		x := w.Observe(ctx)
		canary[i], stable[i] = x.CanaryVersion, x.StableVersion
		switch {
		case x.CanaryHealth == rollout.HealthDown && (o.CanaryHealth != rollout.HealthDown || x.CanaryFailed && !o.CanaryFailed):
			o.CanaryHealth, o.CanaryReason, o.CanaryFailed = rollout.HealthDown, x.CanaryReason, x.CanaryFailed
		case x.CanaryHealth == rollout.HealthUnknown && o.CanaryHealth == rollout.HealthUp:
			o.CanaryHealth = rollout.HealthUnknown
		}
	}
	o.CanaryVersion, o.StableVersion = joinKnown(canary), joinKnown(stable)
	return o
}

// joinKnown joins the Deployments' template hashes into the set's; empty
// when one of them is unknown.
func joinKnown(hashes []string) string {
	for _, h := range hashes {
		if h == "" {
			return ""
		}
	}
	return strings.Join(hashes, templateSep)
}

// join makes the set's version of the Deployments' versions refs.
func (s *DeploymentSet) join(refs []v1alpha1.VersionRef) v1alpha1.VersionRef {
	if len(refs) == 1 {
		return refs[0]
	}
	hashes := make([]string, len(refs))
	labels := make([]string, len(refs))
	for i, r := range refs {
		hashes[i], labels[i] = r.Template, s.names[i]+"="+r.Version
	}
	return v1alpha1.VersionRef{Template: strings.Join(hashes, templateSep), Version: strings.Join(labels, versionSep)}
}

// Holds reports an error unless v is a version of this set: one template
// of each of its Deployments, as status.stable was written with the same
// list of Deployments.
func (s *DeploymentSet) Holds(v v1alpha1.VersionRef) error {
	_, err := s.parts(v)
	return err
}

// parts splits the set's version v into each Deployment's.
func (s *DeploymentSet) parts(v v1alpha1.VersionRef) ([]v1alpha1.VersionRef, error) {
	hashes := strings.Split(v.Template, templateSep)
	if len(hashes) != len(s.workloads) {
		return nil, fmt.Errorf("version %s holds the templates of %d Deployments, and the rollout rolls out %d (%s): a Rollout keeps its Deployments once installed; delete it (pipit hands them back) and create it with the new list",
			v.Template, len(hashes), len(s.workloads), strings.Join(s.names, ", "))
	}
	if len(s.workloads) == 1 {
		return []v1alpha1.VersionRef{v}, nil
	}
	labels := strings.Split(v.Version, versionSep)
	out := make([]v1alpha1.VersionRef, len(hashes))
	for i, h := range hashes {
		out[i] = v1alpha1.VersionRef{Template: h, Version: h}
		if len(labels) == len(hashes) {
			out[i].Version = strings.TrimPrefix(labels[i], s.names[i]+"=")
		}
	}
	return out, nil
}

// eachPart calls act with each Deployment and its part of v.
func (s *DeploymentSet) eachPart(v v1alpha1.VersionRef, act func(Workload, v1alpha1.VersionRef) error) error {
	parts, err := s.parts(v)
	if err != nil {
		return err
	}
	return s.each(func(i int, w Workload) error { return act(w, parts[i]) })
}

// each calls act with every Deployment, in order, whatever the others
// answered. The errors of several Deployments name them; when one of them
// failed, the Deployments that are only not ready yet (ErrNotReady) are
// left out, so the failure is not mistaken for a wait.
func (s *DeploymentSet) each(act func(int, Workload) error) error {
	if len(s.workloads) == 1 {
		return act(0, s.workloads[0])
	}
	var failed, waiting []error
	for i, w := range s.workloads {
		err := act(i, w)
		switch {
		case err == nil:
		case errors.Is(err, ErrNotReady):
			waiting = append(waiting, fmt.Errorf("Deployment %s: %w", s.names[i], err))
		default:
			failed = append(failed, fmt.Errorf("Deployment %s: %w", s.names[i], err))
		}
	}
	if len(failed) > 0 {
		return errors.Join(failed...)
	}
	return errors.Join(waiting...)
}
