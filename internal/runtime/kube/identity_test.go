package kube

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	authzv1 "k8s.io/api/authorization/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	ctrlclient "sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/client"
	"github.com/pipit-dev/pipit/internal/rollout"
	"github.com/pipit-dev/pipit/internal/testenv/kubecluster"
	"github.com/pipit-dev/pipit/internal/testenv/kubefixture"
)

// operator is the person of the identity test: bound to Kubernetes' edit
// role in the test's namespace, which pipit-edit and pipit-view join.
const operator = "alice"

// impersonating writes a kubeconfig of the cluster's admin acting as
// user, in namespace: the API server authenticates the requests as user.
func impersonating(t *testing.T, c *kubecluster.Cluster, user, namespace string) string {
	t.Helper()
	cfg, err := clientcmd.LoadFromFile(c.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	for _, auth := range cfg.AuthInfos {
		auth.Impersonate = user
	}
	for _, ctx := range cfg.Contexts {
		ctx.Namespace = namespace
	}
	path := filepath.Join(t.TempDir(), user+".kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// peopleSteerThroughCommands runs with the install manifests applied (the
// roles and the admission policy): an operator with the edit role
// promotes through a RolloutCommand and the history names them; a
// command naming someone else is refused by the API server, whoever
// sends it; nor may the operator write the Rollout's status.
func peopleSteerThroughCommands(t *testing.T, c *kubecluster.Cluster) {
	s := newScenario(t)
	s.startController()
	bindEdit(t, c, s.Namespace, operator)
	s.createWeb(2, `
  strategy:
    steps:
      - setWeight: 50
      - pause: {}
`)
	s.WaitInstalled("web")
	waitPolicyRefusesForgery(s)

	kube, err := client.NewKube(client.KubeOptions{Kubeconfig: impersonating(t, c, operator, s.Namespace)})
	if err != nil {
		t.Fatal(err)
	}
	if user, err := kube.User(s.Ctx()); err != nil || user != operator {
		t.Fatalf("User() = %q, %v; want %s", user, err, operator)
	}
	s.SetImage("web", "registry.example/web:v2")
	s.WaitPhase("web", v1alpha1.PhaseAwaitingDecision)
	if _, err := kube.Submit(s.Ctx(), "web", rollout.Command{Kind: rollout.CommandPromote, Actor: "mallory", Reason: "looks good"}); err != nil {
		t.Fatalf("promote as %s: %v", operator, err)
	}
	r := s.WaitPhase("web", v1alpha1.PhaseSucceeded)
	if !slices.ContainsFunc(r.Status.History, func(e v1alpha1.Event) bool { return e.Actor == operator && strings.Contains(e.Message, "looks good") }) {
		t.Errorf("no event of the history names %s with the reason:\n%s", operator, kubefixture.History(r))
	}
	if slices.ContainsFunc(r.Status.History, func(e v1alpha1.Event) bool { return e.Actor == "mallory" }) {
		t.Errorf("the history names the actor the client claimed:\n%s", kubefixture.History(r))
	}

	// The operator may not write the phase or the weight.
	asOperator := impersonatedClient(t, c, operator)
	patch := []byte(`{"status":{"phase":"Succeeded","canaryWeight":100}}`)
	err = asOperator.Status().Patch(s.Ctx(), r, ctrlclient.RawPatch("application/merge-patch+json", patch))
	if !apierrors.IsForbidden(err) {
		t.Errorf("%s patching rollouts/status: %v, want Forbidden", operator, err)
	}
}

// bindEdit gives user Kubernetes' edit role in namespace and waits until
// the aggregated pipit-edit lets them create RolloutCommands.
func bindEdit(t *testing.T, c *kubecluster.Cluster, namespace, user string) {
	t.Helper()
	rb := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: user + "-edit"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "edit"},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: "User", Name: user}},
	}
	if _, err := c.Clientset().RbacV1().RoleBindings(namespace).Create(kubefixture.CallContext(t), rb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	create := authzv1.ResourceAttributes{Group: "pipit.dev", Resource: "rolloutcommands", Verb: "create", Namespace: namespace}
	e := &kubefixture.Env{T: t, Cluster: c, Namespace: namespace}
	e.Eventually(user+" may create RolloutCommands", func(context.Context) error {
		if !allowedTo(t, c, user, create) {
			return errors.New("not yet: the roles are aggregated a moment after they are created")
		}
		return nil
	})
}

// impersonatedClient is a client of the cluster acting as user.
func impersonatedClient(t *testing.T, c *kubecluster.Cluster, user string) ctrlclient.Client {
	t.Helper()
	cfg := rest.CopyConfig(c.RESTConfig())
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user}
	cl, err := ctrlclient.New(cfg, ctrlclient.Options{Scheme: Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

// waitPolicyRefusesForgery waits until the admission policy is in force
// (a policy takes a moment to be loaded), then checks that it refuses a
// command naming someone else, from the operator and from an admin alike.
// The forged commands name a Rollout that does not exist: one let through
// while the policy loads commands nothing.
func waitPolicyRefusesForgery(s *scenario) {
	s.T.Helper()
	forged := func(by string) *v1alpha1.RolloutCommand {
		return &v1alpha1.RolloutCommand{ObjectMeta: metav1.ObjectMeta{GenerateName: "forged-", Namespace: s.Namespace},
			Spec: v1alpha1.RolloutCommandSpec{Rollout: "nothing", Verb: "abort", RequestedBy: by}}
	}
	asOperator := impersonatedClient(s.T, s.Cluster, operator)
	s.Eventually("the admission policy refuses a forged requestedBy", func(ctx context.Context) error {
		err := asOperator.Create(ctx, forged("bob"))
		if err == nil {
			return errors.New("accepted")
		}
		if !strings.Contains(err.Error(), "is not the user creating this RolloutCommand ("+operator+")") {
			return fmt.Errorf("refused for another reason: %w", err)
		}
		return nil
	})
	if err := s.Client.Create(s.Ctx(), forged(operator)); err == nil || !apierrors.IsForbidden(err) {
		s.T.Errorf("admin creating a command in %s's name: %v, want Forbidden", operator, err)
	}
	mine := forged(operator)
	if err := asOperator.Create(s.Ctx(), mine); err != nil {
		s.T.Fatalf("%s creating a command in their own name: %v", operator, err)
	}
	mine.Spec.Verb = "promote"
	if err := s.Client.Update(s.Ctx(), mine); err == nil {
		s.T.Errorf("a RolloutCommand's spec was changed after it was created")
	}
}
