package kube

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/testenv/kubefixture"
)

// targetsSpec rolls out two Deployments together: frontend behind a
// Gateway API route, backend split by replicas.
const targetsSpec = `
  targetRefs:
    - name: frontend
      router:
        gatewayAPI:
          parentRefs: [{name: gw}]
    - name: backend
` + analysisSteps

// startedShop starts a scenario with the Deployments frontend, two
// replicas of v1, and backend, backends replicas of v1, the Rollout shop
// of both, and its controller; prepare changes the Deployments before the
// controller starts. It returns once both are installed.
func startedShop(t *testing.T, backends int32, prepare func(s *scenario)) *scenario {
	t.Helper()
	s := newScenario(t)
	s.CreateDeployment("frontend", "registry.example/web:v1", 2)
	s.CreateDeployment("backend", "registry.example/api:v1", backends)
	if prepare != nil {
		prepare(s)
	}
	r, err := kubefixture.ParseRollout("apiVersion: pipit.dev/v1alpha1\nkind: Rollout\nmetadata: {name: shop}\nspec:" +
		strings.ReplaceAll(targetsSpec, "METRIC_URL", s.metricURL))
	if err != nil {
		t.Fatal(err)
	}
	s.Create(r)
	s.startController()
	r = s.WaitRollout("shop", "both Deployments installed, with their status", func(r *v1alpha1.Rollout) bool {
		return r.Status.Stable != nil && r.Status.Phase == v1alpha1.PhaseIdle && len(r.Status.Targets) == 2 &&
			r.Status.Targets[0].StableReady == 2 && r.Status.Targets[1].StableReady == backends
	})
	if want := "frontend=registry.example/web:v1; backend=registry.example/api:v1"; r.Status.Stable.Version != want {
		t.Errorf("status.stable.version %q, want %q", r.Status.Stable.Version, want)
	}
	if fe, be := r.Status.Targets[0], r.Status.Targets[1]; fe.Name != "frontend" || fe.StableVersion != "registry.example/web:v1" ||
		be.Name != "backend" || be.StableVersion != "registry.example/api:v1" || fe.StableRevision == "" {
		t.Errorf("status.targets %+v", r.Status.Targets)
	}
	for _, name := range []string{"frontend", "frontend-stable", "frontend-canary", "backend", "backend-stable", "backend-canary"} {
		s.WaitService(name)
	}
	for _, name := range []string{"frontend", "backend"} {
		s.WaitDeployment(name, "the user's Deployment held at zero", func(d *appsv1.Deployment) bool {
			return ptr.Deref(d.Spec.Replicas, 1) == 0
		})
	}
	return s
}

// canaryReplicaShare samples the canary copy's share of a Deployment's
// replicas, in percent, for recordWeights: the replica router's weight.
func (s *scenario) canaryReplicaShare(target string) func() (int64, bool) {
	return func() (int64, bool) {
		var stable, canary appsv1.Deployment
		ctx := context.Background()
		if s.Client.Get(ctx, s.Key(target+"-stable"), &stable) != nil || s.Client.Get(ctx, s.Key(target+"-canary"), &canary) != nil {
			return 0, false
		}
		return percentOf(int64(ptr.Deref(stable.Spec.Replicas, 0)), int64(ptr.Deref(canary.Spec.Replicas, 0))), true
	}
}

// rolledBackToV1 waits until both Deployments send all traffic to their
// stable copies, which run v1, and run no canary; their canary copies
// ran v2 before they were retired.
func (s *scenario) rolledBackToV1(when string) {
	s.T.Helper()
	s.Eventually(when+": the frontend route sends all to stable", func(context.Context) error {
		if st, c, _ := s.routeWeights("frontend", "frontend-stable", "frontend-canary"); c != 0 || st == 0 {
			return fmt.Errorf("stable %d, canary %d", st, c)
		}
		return nil
	})
	for name, image := range map[string]string{"frontend": "registry.example/web", "backend": "registry.example/api"} {
		canary := s.WaitDeployment(name+"-canary", when+": the canary copy scaled to zero", func(d *appsv1.Deployment) bool {
			return ptr.Deref(d.Spec.Replicas, 1) == 0
		})
		if got := canary.Spec.Template.Spec.Containers[0].Image; got != image+":v2" {
			s.T.Errorf("%s: the canary copy of %s ran %s, want %s:v2", when, name, got, image)
		}
		if got := s.Deployment(name + "-stable").Spec.Template.Spec.Containers[0].Image; got != image+":v1" {
			s.T.Errorf("%s: the stable copy of %s runs %s, want %s:v1", when, name, got, image)
		}
	}
}

func TestTargetRefsMoveAndPromoteTogether(t *testing.T) {
	t.Parallel()
	s := startedShop(t, 4, nil)
	front := recordWeights(func() (int64, bool) {
		st, c, ok := s.routeWeights("frontend", "frontend-stable", "frontend-canary")
		return percentOf(int64(st), int64(c)), ok
	})
	back := recordWeights(s.canaryReplicaShare("backend"))
	s.SetImage("frontend", "registry.example/web:v2")
	s.SetImage("backend", "registry.example/api:v2")
	r := s.WaitRollout("shop", "both v2 promoted", func(r *v1alpha1.Rollout) bool {
		return r.Status.Phase == v1alpha1.PhaseSucceeded && r.Status.Stable != nil &&
			r.Status.Stable.Version == "frontend=registry.example/web:v2; backend=registry.example/api:v2"
	})
	if seen := front.values(); !containsInOrder(seen, 20, 50) {
		t.Errorf("frontend route canary shares seen %v, want 20 then 50", seen)
	}
	// The replica router gives the canary ceil(4 × weight) replicas.
	if seen := back.values(); !containsInOrder(seen, 25, 50) {
		t.Errorf("backend canary replica shares seen %v, want 25 (one of four) then 50", seen)
	}
	s.Eventually("status.targets shows both serving v2", func(context.Context) error {
		ts := s.Rollout("shop").Status.Targets
		if len(ts) != 2 || ts[0].StableVersion != "registry.example/web:v2" || ts[1].StableVersion != "registry.example/api:v2" ||
			ts[0].CanaryRevision != "" || ts[1].CanaryRevision != "" {
			return fmt.Errorf("status.targets %+v", ts)
		}
		return nil
	})
	s.Eventually("the frontend route sends all to stable", func(context.Context) error {
		if st, c, _ := s.routeWeights("frontend", "frontend-stable", "frontend-canary"); c != 0 || st == 0 {
			return fmt.Errorf("stable %d, canary %d", st, c)
		}
		return nil
	})
	for _, reason := range []string{"Started", "WeightChanged", "CheckPassed", "Promoted"} {
		s.waitEvent("shop", reason)
	}
	if r.Status.Analysis.PassedChecks < 2 {
		t.Errorf("%d checks passed, want one at each weight", r.Status.Analysis.PassedChecks)
	}
}

func TestTargetRefsRollBackTogetherOnFailingMetric(t *testing.T) {
	t.Parallel()
	s := startedShop(t, 2, nil)
	s.SetImage("frontend", "registry.example/web:v2")
	s.SetImage("backend", "registry.example/api:v2")
	// The two changes are two writes: the set's canary is both v2 once the
	// controller saw the second.
	s.WaitRollout("shop", "the canary of both v2", func(r *v1alpha1.Rollout) bool {
		return r.Status.Canary != nil && r.Status.Canary.Version == "frontend=registry.example/web:v2; backend=registry.example/api:v2"
	})
	s.metric.Store(50.0) // success rate far below the 99 asked for
	r := s.WaitPhase("shop", v1alpha1.PhaseRolledBack)
	if r.Status.Rollback == nil || r.Status.Rollback.Metric != "success-rate" {
		t.Errorf("rollback %+v does not name the metric", r.Status.Rollback)
	}
	s.rolledBackToV1("after the rollback")
}

func TestTargetRefsOneDeploymentNeverReadyRollsAllBack(t *testing.T) {
	t.Parallel()
	s := startedShop(t, 2, func(s *scenario) {
		s.UpdateDeployment("backend", func(d *appsv1.Deployment) { d.Spec.ProgressDeadlineSeconds = ptr.To(int32(5)) })
	})
	s.SetImage("frontend", "registry.example/web:v2")
	// No node matches the backend's new pods: they stay Pending until its
	// canary copy's progress deadline passes.
	s.UpdateDeployment("backend", func(d *appsv1.Deployment) {
		d.Spec.Template.Spec.Containers[0].Image = "registry.example/api:v2"
		d.Spec.Template.Spec.NodeSelector = map[string]string{"pipit.dev/test-zone": "nowhere"}
	})
	r := s.WaitRollout("shop", "the whole set rolled back", func(r *v1alpha1.Rollout) bool {
		return r.Status.Rollback != nil && (r.Status.Phase == v1alpha1.PhaseRolledBack || r.Status.Phase == v1alpha1.PhaseFailed)
	})
	if !strings.Contains(r.Status.Rollback.Reason, "backend-canary") {
		t.Errorf("rollback reason %q does not name the backend's canary copy", r.Status.Rollback.Reason)
	}
	s.rolledBackToV1("after the rollback")
}

// TestRolloutCRDServesTheKubernetesExamples: the API server keeps every
// field of the examples of several Deployments (the per-Deployment
// settings of spec.targetRefs) and of an experiment (its goal counted in
// Prometheus).
func TestRolloutCRDServesTheKubernetesExamples(t *testing.T) {
	t.Parallel()
	c := kubefixture.Cluster(t)
	for file, check := range map[string]func(v1alpha1.RolloutSpec) bool{
		"kubernetes-several.yaml": func(got v1alpha1.RolloutSpec) bool {
			return len(got.TargetRefs) == 2 && got.TargetRefs[0].Router != nil && got.TargetRefs[1].Service != nil && got.TargetRefs[1].Service.Port == 8080
		},
		"kubernetes-experiment.yaml": func(got v1alpha1.RolloutSpec) bool {
			return got.Strategy.Experiment != nil && len(got.Analysis.Goals) == 1 && got.Analysis.Goals[0].Prometheus != nil &&
				strings.Contains(got.Analysis.Goals[0].Prometheus.Visitors, "{{ .Elapsed }}")
		},
	} {
		objs, err := readObjects(kubefixture.RepoPath(t, "examples/"+file))
		if err != nil || len(objs) != 1 {
			t.Fatalf("examples/%s: %d objects, %v", file, len(objs), err)
		}
		ns := c.Namespace(t)
		objs[0].SetNamespace(ns)
		rollouts := c.Dynamic().Resource(rolloutResource).Namespace(ns)
		created, err := rollouts.Create(kubefixture.CallContext(t), objs[0].DeepCopy(), metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("create the Rollout of examples/%s: %v", file, err)
		}
		got, want := typed(t, created).Spec, typed(t, objs[0]).Spec
		if !reflect.DeepEqual(got, want) {
			t.Errorf("examples/%s: spec read back differs:\n got %+v\nwant %+v", file, got, want)
		}
		if !check(got) {
			t.Errorf("examples/%s read back as %+v", file, got)
		}
	}
}

// TestTargetRefsListKept: the API server refuses a change to the list of
// Deployments, and a Rollout switched from targetRefs to targetRef after
// the install is Stalled, not half-applied.
func TestTargetRefsListKept(t *testing.T) {
	t.Parallel()
	s := startedShop(t, 2, nil)
	r := s.Rollout("shop")
	r.Spec.TargetRefs = append(r.Spec.TargetRefs, v1alpha1.DeploymentRef{TargetRef: v1alpha1.TargetRef{Name: "worker"}})
	if err := s.Client.Update(s.Ctx(), r); err == nil || !strings.Contains(err.Error(), "the Deployments of targetRefs and their order cannot change") {
		t.Errorf("a third Deployment added: %v, want the API server to refuse it", err)
	}
	r = s.Rollout("shop")
	r.Spec.TargetRefs, r.Spec.TargetRef = nil, &v1alpha1.TargetRef{Name: "frontend"}
	if err := s.Client.Update(s.Ctx(), r); err != nil {
		t.Fatal(err)
	}
	r = s.WaitRollout("shop", "the Stalled condition", func(r *v1alpha1.Rollout) bool {
		c := meta.FindStatusCondition(r.Status.Conditions, ConditionStalled)
		return c != nil && c.Status == "True"
	})
	c := meta.FindStatusCondition(r.Status.Conditions, ConditionStalled)
	if c.Reason != "InvalidSpec" || !strings.Contains(c.Message, "spec.targetRef: version") || !strings.Contains(c.Message, "create it with the new list") {
		t.Errorf("Stalled condition %+v: want InvalidSpec naming spec.targetRef and what to do", c)
	}
	var canary appsv1.Deployment
	if s.Found("frontend-canary", &canary) && ptr.Deref(canary.Spec.Replicas, 0) != 0 {
		t.Errorf("the stalled rollout runs %d frontend canaries", ptr.Deref(canary.Spec.Replicas, 0))
	}
}
