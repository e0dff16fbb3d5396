package kubetest

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/client"
	"github.com/pipit-dev/pipit/internal/testenv/kubefixture"
)

// controllerEvery is the fake controller's time between two looks at the
// Rollout on the real API server.
const controllerEvery = 50 * time.Millisecond

// createRollout creates a Rollout of a Deployment named like it, with two
// steps, in namespace ns, then writes st through the status subresource,
// as the controller would.
func createRollout(e *kubefixture.Env, ns, name string, st v1alpha1.RolloutStatus) *v1alpha1.Rollout {
	e.T.Helper()
	w := v1alpha1.PercentOf(10)
	r := &v1alpha1.Rollout{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: v1alpha1.RolloutSpec{
			TargetRef: &v1alpha1.TargetRef{Name: name},
			Strategy:  v1alpha1.Strategy{Steps: []v1alpha1.Step{{SetWeight: &w}, {Pause: &v1alpha1.PauseStep{}}}},
		},
	}
	if err := e.Client.Create(e.Ctx(), r); err != nil {
		e.T.Fatalf("create rollout %s: %v", name, err)
	}
	r.Status = st
	if err := e.Client.Status().Update(e.Ctx(), r); err != nil {
		e.T.Fatalf("write the status of rollout %s: %v", name, err)
	}
	return r
}

// progressingWeb is the test's Env with a Rollout "web" at its first step.
func progressingWeb(t *testing.T) *kubefixture.Env {
	t.Helper()
	e := kubefixture.New(t)
	createRollout(e, e.Namespace, "web", progressing())
	return e
}

// progressing is the status of a rollout at its first step.
func progressing() v1alpha1.RolloutStatus {
	return v1alpha1.RolloutStatus{
		Phase:        v1alpha1.PhaseProgressing,
		Message:      "routing 10% to canary nginx:1.1",
		Stable:       &v1alpha1.VersionRef{Version: "nginx:1.0", Template: "5d8f9c"},
		Canary:       &v1alpha1.VersionRef{Version: "nginx:1.1", Template: "7b6c4d"},
		CanaryWeight: v1alpha1.PercentOf(10),
	}
}

// newKube is the CLI's client of the test's namespace, built from the
// cluster's kubeconfig as `--kube --kubeconfig FILE -n NS` builds it.
func newKube(e *kubefixture.Env) *client.Kube {
	e.T.Helper()
	k, err := client.NewKube(client.KubeOptions{Kubeconfig: e.Cluster.Kubeconfig, Namespace: e.Namespace})
	if err != nil {
		e.T.Fatal(err)
	}
	return k
}
