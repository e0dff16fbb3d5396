package kube

import (
	"context"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"
	ctrlclient "sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/client"
	"github.com/pipit-dev/pipit/internal/rollout"
	"github.com/pipit-dev/pipit/internal/target"
	"github.com/pipit-dev/pipit/internal/testenv/kubefixture"
)

// blueGreenSpec previews the new version on the Service web-preview,
// checked by the web metric, and waits for a person to switch.
const blueGreenSpec = `
  decision: manual
  strategy:
    blueGreen:
      previewService: web-preview
  analysis:
    interval: 1s
    metrics:
      - name: success-rate
        provider: {web: {url: METRIC_URL, jsonPath: "$.value"}}
        thresholdRange: {min: 99}
`

// copyPods are the labels of one copy's pods.
func copyPods(role string) map[string]string {
	return map[string]string{"app": "web", target.LabelRole: role}
}

// TestBlueGreenPreviewSwitchAndUndo: the preview Service reaches the new
// version while the apex and stable Services reach the old one; the
// promotion switches them to the new pods; an undo switches them back to
// the old pods, which never stopped, and creates no Pod nor ReplicaSet.
func TestBlueGreenPreviewSwitchAndUndo(t *testing.T) {
	t.Parallel()
	s, _ := installedScenario(t, blueGreenSpec)
	cli, err := client.NewKube(client.KubeOptions{Kubeconfig: s.Cluster.Kubeconfig, Namespace: s.Namespace})
	if err != nil {
		t.Fatal(err)
	}
	s.SetImage("web", "registry.example/web:v2")
	r := s.WaitRollout("web", "the preview checked, waiting for a person", func(r *v1alpha1.Rollout) bool {
		return r.Status.Phase == v1alpha1.PhaseAwaitingDecision && r.Status.Previewing
	})
	if r.Status.CanaryWeight != 0 {
		t.Errorf("the preview gets %s of the traffic", r.Status.CanaryWeight)
	}
	s.reachesOnly(map[string]string{"web-preview": target.RoleCanary, "web": target.RoleStable, "web-stable": target.RoleStable})

	if _, err := cli.Submit(s.Ctx(), "web", rollout.Command{Kind: rollout.CommandPromote, Actor: "alice"}); err != nil {
		t.Fatalf("promote: %v", err)
	}
	s.WaitRollout("web", "v2 promoted", func(r *v1alpha1.Rollout) bool {
		return r.Status.Phase == v1alpha1.PhaseSucceeded && r.Status.Stable != nil && strings.Contains(r.Status.Stable.Version, "web:v2")
	})
	s.reachesOnly(map[string]string{"web": target.RoleCanary, "web-stable": target.RoleCanary})
	warm := s.Deployment("web-stable")
	if img := warm.Spec.Template.Spec.Containers[0].Image; img != "registry.example/web:v1" || ptr.Deref(warm.Spec.Replicas, 1) != 2 {
		t.Errorf("the stable copy runs %d of %s after the switch, want the previous version's 2 warm", ptr.Deref(warm.Spec.Replicas, 1), img)
	}

	before := s.PodsAndReplicaSets()
	if _, err := cli.Submit(s.Ctx(), "web", rollout.Command{Kind: rollout.CommandUndo, Actor: "alice", Reason: "bad release"}); err != nil {
		t.Fatalf("undo: %v", err)
	}
	undone := s.WaitPhase("web", v1alpha1.PhaseRolledBack)
	// The commands were RolloutCommands in the name of the kubeconfig's
	// user, whatever actor the caller claimed, and were answered.
	if i := slices.IndexFunc(undone.Status.History, func(e v1alpha1.Event) bool { return e.Actor == "admin" }); i < 0 {
		t.Errorf("no event of the history names admin: %s", kubefixture.History(undone))
	}
	var cmds v1alpha1.RolloutCommandList
	if err := s.Client.List(s.Ctx(), &cmds, ctrlclient.InNamespace(s.Namespace)); err != nil {
		t.Fatal(err)
	}
	for _, c := range cmds.Items {
		if !c.Status.Consumed || c.Status.Result != v1alpha1.CommandApplied || c.Spec.RequestedBy != "admin" {
			t.Errorf("RolloutCommand %s: %+v %+v, want admin's, applied", c.Name, c.Spec, c.Status)
		}
	}
	if len(cmds.Items) != 2 || len(undone.Status.ConsumedCommands) != 2 {
		t.Errorf("%d RolloutCommands, %d consumed in the status; want the promote and the undo", len(cmds.Items), len(undone.Status.ConsumedCommands))
	}
	s.reachesOnly(map[string]string{"web": target.RoleStable, "web-stable": target.RoleStable})
	s.WaitDeployment("web-canary", "the undone version scaled down", func(d *appsv1.Deployment) bool {
		return ptr.Deref(d.Spec.Replicas, 1) == 0 && d.Status.Replicas == 0
	})
	s.NothingCreatedSince(before, "the undo")
	var svc corev1.Service
	if s.Found("web-preview", &svc) && svc.Spec.Selector[target.LabelRole] != target.RoleCanary {
		t.Errorf("the preview Service selects %v", svc.Spec.Selector)
	}
}

// reachesOnly waits until each Service reaches the two pods of the copy
// with the role given, and no other.
func (s *scenario) reachesOnly(services map[string]string) {
	s.T.Helper()
	s.Eventually("the Services reach the copies they should", func(ctx context.Context) error {
		for svc, role := range services {
			if err := s.ServiceReaches(ctx, svc, copyPods(role), 2); err != nil {
				return err
			}
		}
		return nil
	})
}

// TestWarmVersionConsolidatedWhenTheUndoWindowCloses: once the undo window
// passed, the stable copy runs the promoted version and serves it again,
// and the canary copy is scaled down.
func TestWarmVersionConsolidatedWhenTheUndoWindowCloses(t *testing.T) {
	t.Parallel()
	s, _ := installedScenario(t, strings.Replace(blueGreenSpec, "decision: manual", "undoWindow: 3s", 1))
	s.SetImage("web", "registry.example/web:v2")
	s.WaitRollout("web", "v2 switched to on its own", func(r *v1alpha1.Rollout) bool {
		return r.Status.Phase == v1alpha1.PhaseSucceeded && r.Status.Stable != nil && strings.Contains(r.Status.Stable.Version, "web:v2")
	})
	s.WaitDeployment("web-stable", "the stable copy on v2", func(d *appsv1.Deployment) bool {
		return d.Spec.Template.Spec.Containers[0].Image == "registry.example/web:v2" && d.Status.UpdatedReplicas == 2 &&
			d.Status.AvailableReplicas == 2 && d.Annotations[target.AnnotationServing] == ""
	})
	s.WaitDeployment("web-canary", "the canary copy scaled down", func(d *appsv1.Deployment) bool {
		return ptr.Deref(d.Spec.Replicas, 1) == 0 && d.Status.Replicas == 0
	})
	s.reachesOnly(map[string]string{"web": target.RoleStable, "web-stable": target.RoleStable})
}
