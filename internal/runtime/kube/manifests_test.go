package kube

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	authzv1 "k8s.io/api/authorization/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/testenv/kubecluster"
	"github.com/pipit-dev/pipit/internal/testenv/kubefixture"
)

// manifestDir holds the install manifests, applied with
// `kubectl apply -k deploy/kubernetes`, relative to the repository's root.
const manifestDir = "deploy/kubernetes"

// controllerUser is the identity the controller runs as once installed.
const controllerUser = "system:serviceaccount:pipit-system:pipit-controller"

// kustomization is kustomization.yaml; this test renders its namespace and
// resources, and knows its other fields only so that a misspelt one fails.
type kustomization struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Namespace  string   `json:"namespace"`
	Labels     []any    `json:"labels"`
	Resources  []string `json:"resources"`
	Images     []struct {
		Name   string `json:"name"`
		NewTag string `json:"newTag"`
	} `json:"images"`
}

// renderManifests reads the kustomization's resources and puts the
// namespaced ones in its namespace, as kustomize does.
func renderManifests(t *testing.T) (kustomization, []*unstructured.Unstructured) {
	t.Helper()
	dir := kubefixture.RepoPath(t, manifestDir)
	raw, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var k kustomization
	if err := yaml.UnmarshalStrict(raw, &k); err != nil {
		t.Fatalf("kustomization.yaml: %v", err)
	}
	if k.Namespace != "pipit-system" {
		t.Errorf("kustomization namespace %q, want pipit-system", k.Namespace)
	}
	// Every manifest in the directory is installed: a file left out of the
	// list would silently not be applied.
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if name := filepath.Base(f); name != "kustomization.yaml" && !slices.Contains(k.Resources, name) {
			t.Errorf("%s is not listed in kustomization.yaml's resources", name)
		}
	}
	var objs []*unstructured.Unstructured
	for _, res := range k.Resources {
		read, err := readObjects(filepath.Join(dir, res))
		if err != nil {
			t.Fatal(err)
		}
		if len(read) == 0 {
			t.Errorf("%s holds no object", res)
		}
		objs = append(objs, read...)
	}
	return k, objs
}

// TestInstallImagePinned checks that the install names one released image
// tag, in the Deployment and in the kustomization's images (which `make
// image` tags the build with): never :latest, which a node may pull anew
// at any time, nor no tag at all, which means :latest.
func TestInstallImagePinned(t *testing.T) {
	k, objs := renderManifests(t)
	if len(k.Images) != 1 || k.Images[0].NewTag == "" || k.Images[0].NewTag == "latest" {
		t.Fatalf("kustomization.yaml: images %+v, want one image with a pinned newTag", k.Images)
	}
	want := k.Images[0].Name + ":" + k.Images[0].NewTag
	containers := 0
	for _, o := range objs {
		if o.GetKind() != "Deployment" {
			continue
		}
		list, _, err := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "containers")
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range list {
			containers++
			if image, _ := c.(map[string]any)["image"].(string); image != want {
				t.Errorf("deployment.yaml: Deployment %s: image %q, want %q (kustomization.yaml's images)", o.GetName(), image, want)
			}
		}
	}
	if containers == 0 {
		t.Error("no Deployment container names an image")
	}
}

func TestInstallManifests(t *testing.T) {
	c := kubefixture.Cluster(t)
	k, objs := renderManifests(t)

	kinds := map[string]int{}
	for _, o := range objs {
		kinds[o.GetKind()]++
	}
	for kind, want := range map[string]int{"Namespace": 1, "CustomResourceDefinition": 4, "ServiceAccount": 1,
		"ClusterRole": 3, "ClusterRoleBinding": 1, "Role": 1, "RoleBinding": 1, "Deployment": 1, "Service": 1,
		"ValidatingAdmissionPolicy": 1, "ValidatingAdmissionPolicyBinding": 1} {
		if kinds[kind] != want {
			t.Errorf("%d objects of kind %s, want %d", kinds[kind], kind, want)
		}
	}

	applyManifests(t, c, k.Namespace, objs)

	// Least privilege: what a Rollout controller does is allowed, the rest
	// (secrets, deleting the users' Rollouts, leases elsewhere) is not.
	allowed := []authzv1.ResourceAttributes{
		{Group: "pipit.dev", Resource: "rollouts", Verb: "watch", Namespace: "shop"},
		{Group: "pipit.dev", Resource: "rollouts", Subresource: "status", Verb: "patch", Namespace: "shop"},
		{Group: "pipit.dev", Resource: "rollouts", Subresource: "finalizers", Verb: "update", Namespace: "shop"},
		{Group: "pipit.dev", Resource: "rolloutmetrictemplates", Verb: "watch", Namespace: "shop"},
		{Group: "pipit.dev", Resource: "clusterrolloutmetrictemplates", Verb: "list"},
		{Group: "apps", Resource: "deployments", Verb: "create", Namespace: "shop"},
		{Group: "apps", Resource: "replicasets", Verb: "list", Namespace: "shop"},
		{Resource: "pods", Verb: "watch", Namespace: "shop"},
		{Resource: "services", Verb: "patch", Namespace: "shop"},
		{Resource: "events", Verb: "create", Namespace: "shop"},
		{Group: "gateway.networking.k8s.io", Resource: "httproutes", Verb: "update", Namespace: "shop"},
		{Group: "networking.istio.io", Resource: "virtualservices", Verb: "patch", Namespace: "shop"},
		{Group: "networking.istio.io", Resource: "destinationrules", Verb: "create", Namespace: "shop"},
		{Group: "coordination.k8s.io", Resource: "leases", Verb: "update", Namespace: k.Namespace},
	}
	denied := []authzv1.ResourceAttributes{
		{Resource: "secrets", Verb: "get", Namespace: "shop"},
		{Resource: "pods", Verb: "delete", Namespace: "shop"},
		{Group: "apps", Resource: "replicasets", Verb: "delete", Namespace: "shop"},
		{Group: "pipit.dev", Resource: "rollouts", Verb: "delete", Namespace: "shop"},
		{Group: "pipit.dev", Resource: "rolloutmetrictemplates", Verb: "update", Namespace: "shop"},
		{Group: "coordination.k8s.io", Resource: "leases", Verb: "update", Namespace: "kube-system"},
		{Group: "rbac.authorization.k8s.io", Resource: "clusterroles", Verb: "create"},
	}
	for _, attrs := range allowed {
		if !allowedTo(t, c, controllerUser, attrs) {
			t.Errorf("the controller may not %s", describe(attrs))
		}
	}
	for _, attrs := range denied {
		if allowedTo(t, c, controllerUser, attrs) {
			t.Errorf("the controller may %s, which it does not need", describe(attrs))
		}
	}

	t.Run("people's roles", func(t *testing.T) { peopleGetRolloutRights(t, c) })
	t.Run("people steer through RolloutCommands", func(t *testing.T) { peopleSteerThroughCommands(t, c) })
	t.Run("the controller needs no more", func(t *testing.T) {
		controllerRunsWithInstalledRBAC(t, k.Namespace)
	})
}

// controllerRunsWithInstalledRBAC runs a controller as the installed
// service account, leader election included, through a first install and
// a promotion behind a Gateway API route: the RBAC is not only small, it
// is enough.
func controllerRunsWithInstalledRBAC(t *testing.T, leaseNamespace string) {
	s := newScenario(t)
	cfg := rest.CopyConfig(s.Cluster.RESTConfig())
	cfg.Impersonate = rest.ImpersonationConfig{UserName: controllerUser}
	// The controller logs to a file, read once it stopped.
	logPath := filepath.Join(t.TempDir(), "controller.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{Config: cfg, Namespace: s.Namespace, MetricsAddr: "0",
			LeaderElection: true, LeaderElectionNamespace: leaseNamespace,
			Log: slog.New(slog.NewTextHandler(logFile, nil))})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("controller: %v", err)
		}
		logFile.Close()
		logs, err := os.ReadFile(logPath)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(logs), "forbidden") {
			t.Errorf("the controller was refused something:\n%s", logs)
		}
	}()
	s.createWeb(1, `
  kubernetes:
    router:
      gatewayAPI: {parentRefs: [{name: gw}]}
  strategy:
    steps:
      - setWeight: 50
      - pause: {duration: 1s}
`)
	s.WaitInstalled("web")
	s.SetImage("web", "registry.example/web:v2")
	s.WaitRollout("web", "promoted", func(r *v1alpha1.Rollout) bool {
		return r.Status.Phase == v1alpha1.PhaseSucceeded && strings.Contains(r.Status.Stable.Version, "web:v2")
	})
	s.waitEvent("web", "Promoted")
}

// peopleGetRolloutRights binds a viewer and an editor to Kubernetes' view
// and edit roles in a namespace, and checks what the aggregated pipit-view
// and pipit-edit give them: the editor writes Rollouts but not their
// status (the phase and weight are the controller's), the viewer reads.
func peopleGetRolloutRights(t *testing.T, c *kubecluster.Cluster) {
	ns := c.Namespace(t)
	for user, role := range map[string]string{"viewer": "view", "editor": "edit"} {
		rb := &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: user},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
			Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: "User", Name: user}},
		}
		if _, err := c.Clientset().RbacV1().RoleBindings(ns).Create(kubefixture.CallContext(t), rb, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	rollouts := func(verb, sub string) authzv1.ResourceAttributes {
		return authzv1.ResourceAttributes{Group: "pipit.dev", Resource: "rollouts", Subresource: sub, Verb: verb, Namespace: ns}
	}
	// The controller manager aggregates the roles a moment after they
	// were created.
	deadline := time.Now().Add(time.Minute)
	for !allowedTo(t, c, "editor", rollouts("create", "")) || !allowedTo(t, c, "viewer", rollouts("list", "")) {
		if time.Now().After(deadline) {
			t.Fatal("within a minute, edit and view did not give the rights of pipit-edit and pipit-view")
		}
		time.Sleep(200 * time.Millisecond)
	}
	templates := func(verb string) authzv1.ResourceAttributes {
		return authzv1.ResourceAttributes{Group: "pipit.dev", Resource: "rolloutmetrictemplates", Verb: verb, Namespace: ns}
	}
	for _, a := range []authzv1.ResourceAttributes{rollouts("patch", ""), rollouts("delete", ""), rollouts("get", "status"),
		templates("create"), templates("update")} {
		if !allowedTo(t, c, "editor", a) {
			t.Errorf("an editor may not %s", describe(a))
		}
	}
	if !allowedTo(t, c, "viewer", templates("list")) {
		t.Errorf("a viewer may not %s", describe(templates("list")))
	}
	for user, a := range map[string]authzv1.ResourceAttributes{"editor": rollouts("patch", "status"),
		"viewer": templates("create")} {
		if allowedTo(t, c, user, a) {
			t.Errorf("a %s may %s", user, describe(a))
		}
	}
	if allowedTo(t, c, "viewer", rollouts("create", "")) {
		t.Errorf("a viewer may %s", describe(rollouts("create", "")))
	}
}

// applyManifests creates the objects in the cluster, which validates them
// against the real API schemas, and deletes them when the test ends. The
// CRD is the one kubefixture.Cluster installed from the same file.
func applyManifests(t *testing.T, c *kubecluster.Cluster, namespace string, objs []*unstructured.Unstructured) {
	t.Helper()
	groups, err := restmapper.GetAPIGroupResources(c.Clientset().Discovery())
	if err != nil {
		t.Fatal(err)
	}
	mapper := restmapper.NewDiscoveryRESTMapper(groups)
	for _, obj := range objs {
		if obj.GetKind() == "CustomResourceDefinition" {
			continue
		}
		gvk := obj.GroupVersionKind()
		mapping, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			t.Fatalf("%s %s: %v", gvk, obj.GetName(), err)
		}
		res := c.Dynamic().Resource(mapping.Resource)
		create, del := res.Create, res.Delete
		if mapping.Scope.Name() == "namespace" {
			if obj.GetNamespace() != namespace {
				t.Errorf("%s %s is in namespace %q, want %q", gvk.Kind, obj.GetName(), obj.GetNamespace(), namespace)
			}
			obj.SetNamespace(namespace)
			create, del = res.Namespace(namespace).Create, res.Namespace(namespace).Delete
		}
		if _, err := create(kubefixture.CallContext(t), obj, metav1.CreateOptions{FieldValidation: "Strict"}); err != nil {
			t.Fatalf("create %s %s: %v", gvk.Kind, obj.GetName(), err)
		}
		name := obj.GetName()
		t.Cleanup(func() {
			if err := del(kubefixture.CallContext(t), name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
				t.Errorf("delete %s %s: %v", gvk.Kind, name, err)
			}
		})
	}
}

// allowedTo asks the API server's authorizer whether user (the
// controller's service account, or a person) may act.
func allowedTo(t *testing.T, c *kubecluster.Cluster, user string, attrs authzv1.ResourceAttributes) bool {
	t.Helper()
	groups := []string{"system:authenticated"}
	if user == controllerUser {
		groups = append(groups, "system:serviceaccounts", "system:serviceaccounts:pipit-system")
	}
	review := &authzv1.SubjectAccessReview{Spec: authzv1.SubjectAccessReviewSpec{
		User:               user,
		Groups:             groups,
		ResourceAttributes: &attrs,
	}}
	got, err := c.Clientset().AuthorizationV1().SubjectAccessReviews().Create(kubefixture.CallContext(t), review, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("access review: %v", err)
	}
	return got.Status.Allowed
}

func describe(a authzv1.ResourceAttributes) string {
	resource := a.Resource
	if a.Subresource != "" {
		resource += "/" + a.Subresource
	}
	if a.Group != "" {
		resource += "." + a.Group
	}
	where := "cluster-wide"
	if a.Namespace != "" {
		where = "in " + a.Namespace
	}
	return strings.Join([]string{a.Verb, resource, where}, " ")
}
