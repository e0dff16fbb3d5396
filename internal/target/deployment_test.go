package target

import (
	"context"
	"errors"
	"maps"
	"reflect"
	"regexp"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/rollout"
	"github.com/pipit-dev/pipit/internal/spec"
	"github.com/pipit-dev/pipit/internal/testenv/kubefixture"
)

const testNS = "shop"

// kubeFixture is a Deployment target over a fake API server holding the
// user's Deployment "web".
type kubeFixture struct {
	t   *testing.T
	c   client.Client
	d   *Deployment
	ctx context.Context
}

// newKubeFixture builds the target of rollout "web" with the router kind
// given (replicas or gatewayAPI) over objs.
func newKubeFixture(t *testing.T, router spec.RouterKind, objs ...client.Object) *kubeFixture {
	t.Helper()
	r := &v1alpha1.Rollout{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: testNS, UID: types.UID("rollout-uid")},
		Spec:       v1alpha1.RolloutSpec{TargetRef: &v1alpha1.TargetRef{Name: "web"}},
	}
	if router == spec.RouterGatewayAPI {
		r.Spec.Kubernetes = &v1alpha1.KubernetesSpec{Router: &v1alpha1.KubernetesRouter{GatewayAPI: &v1alpha1.GatewayAPIRouter{}}}
	}
	c := fake.NewClientBuilder().WithScheme(clientgoscheme.Scheme).WithObjects(objs...).Build()
	return &kubeFixture{t: t, c: c, d: NewDeployment(c, r, spec.ResolveKubernetes(r), nil, nil), ctx: context.Background()}
}

// webTarget is the user's Deployment, rolled out, with image.
func webTarget(image string, replicas int32) *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{
			Name: "web", Namespace: testNS,
			Labels: map[string]string{"app.kubernetes.io/name": "web", LabelManagedBy: "Helm"},
			Annotations: map[string]string{
				"team":                              "shop",
				corev1.LastAppliedConfigAnnotation:  `{"kind":"Deployment"}`,
				"deployment.kubernetes.io/revision": "4",
			},
		},
		Spec: appsv1.DeploymentSpec{
			Replicas:                &replicas,
			Selector:                &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			ProgressDeadlineSeconds: new(int32(120)),
			Strategy:                appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web", "tier": "front"}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name: "web", Image: image,
					Ports: []corev1.ContainerPort{{Name: "web-http", ContainerPort: 8080}},
				}}},
			},
		},
		Status: rolledOutStatus(replicas),
	}
}

func rolledOutStatus(n int32) appsv1.DeploymentStatus {
	return appsv1.DeploymentStatus{Replicas: n, UpdatedReplicas: n, ReadyReplicas: n, AvailableReplicas: n}
}

func (f *kubeFixture) deployment(name string) *appsv1.Deployment {
	f.t.Helper()
	return f.env().Deployment(name)
}

func (f *kubeFixture) service(name string) *corev1.Service {
	f.t.Helper()
	return kubefixture.Get(f.env(), name, &corev1.Service{})
}

// env reads the fake API server as kubefixture does a real one.
func (f *kubeFixture) env() *kubefixture.Env {
	return &kubefixture.Env{T: f.t, Namespace: testNS, Client: f.c}
}

// setStatus plays the Deployment controller: name's status becomes st.
func (f *kubeFixture) setStatus(name string, st appsv1.DeploymentStatus) {
	f.t.Helper()
	d := f.deployment(name)
	d.Status = st
	if err := f.c.Status().Update(f.ctx, d); err != nil {
		f.t.Fatalf("update status of %s: %v", name, err)
	}
}

// markRolledOut makes name fully rolled out at its replicas.
func (f *kubeFixture) markRolledOut(name string) {
	f.t.Helper()
	f.setStatus(name, rolledOutStatus(replicasOf(f.deployment(name))))
}

// setImage plays the user: the target gets a new image; it returns the new
// desired version.
func (f *kubeFixture) setImage(image string) v1alpha1.VersionRef {
	f.t.Helper()
	t := f.deployment("web")
	t.Spec.Template.Spec.Containers[0].Image = image
	if err := f.c.Update(f.ctx, t); err != nil {
		f.t.Fatalf("update target: %v", err)
	}
	return f.desired()
}

// deployCanary plays the user setting a new image, then deploys it as the
// canary; it returns its version.
func (f *kubeFixture) deployCanary(image string) v1alpha1.VersionRef {
	f.t.Helper()
	v := f.setImage(image)
	if err := f.d.DeployCanary(f.ctx, v); err != nil {
		f.t.Fatalf("DeployCanary %s: %v", image, err)
	}
	return v
}

// desired is the version the target describes now.
func (f *kubeFixture) desired() v1alpha1.VersionRef {
	f.t.Helper()
	v, err := f.d.Desired(f.ctx)
	if err != nil {
		f.t.Fatalf("Desired: %v", err)
	}
	return v
}

// install installs the target's current version as stable, rolled out,
// with the target parked.
func (f *kubeFixture) install() v1alpha1.VersionRef {
	f.t.Helper()
	v := f.desired()
	if err := f.d.Install(f.ctx, v); !errors.Is(err, ErrNotReady) {
		f.t.Fatalf("first Install = %v, want ErrNotReady while the stable copy rolls out", err)
	}
	f.markRolledOut("web-stable")
	if err := f.d.Install(f.ctx, v); err != nil {
		f.t.Fatalf("Install: %v", err)
	}
	return v
}

func (f *kubeFixture) replicas(name string) int32 {
	f.t.Helper()
	return replicasOf(f.deployment(name))
}

func (f *kubeFixture) wantReplicas(name string, want int32) {
	f.t.Helper()
	if got := f.replicas(name); got != want {
		f.t.Errorf("%s has %d replicas, want %d", name, got, want)
	}
}

func podTemplate(labels map[string]string, image string) *corev1.PodTemplateSpec {
	return &corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: labels},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "web", Image: image, Env: []corev1.EnvVar{{Name: "MODE", Value: "fast"}},
		}}},
	}
}

func TestTemplateHashIdentifiesTheTemplate(t *testing.T) {
	base := podTemplate(map[string]string{"app": "web", "tier": "front", "zone": "a"}, "web:v1")
	h := TemplateHash(base)
	if !regexp.MustCompile(`^[0-9a-f]{10}$`).MatchString(h) {
		t.Fatalf("TemplateHash = %q, want 10 hex digits", h)
	}
	// The same template built with its labels in another order.
	reordered := podTemplate(map[string]string{"zone": "a", "tier": "front", "app": "web"}, "web:v1")
	if got := TemplateHash(reordered); got != h {
		t.Errorf("same template hashes %s, then %s", h, got)
	}
	copied := base.DeepCopy()
	copied.Labels[LabelRole] = RoleCanary
	copied.Labels[appsv1.DefaultDeploymentUniqueLabelKey] = "5d8f7c9b"
	if got := TemplateHash(copied); got != h {
		t.Errorf("template with the role and pod-template-hash labels hashes %s, want the target's %s", got, h)
	}
	if copied.Labels[LabelRole] != RoleCanary {
		t.Error("TemplateHash changed its argument's labels")
	}
	onlyRole := &corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{LabelRole: RoleStable}}}
	if TemplateHash(onlyRole) != TemplateHash(&corev1.PodTemplateSpec{}) {
		t.Error("a template whose only label is the role hashes unlike one without labels")
	}

	changes := map[string]func(*corev1.PodTemplateSpec){
		"image":      func(p *corev1.PodTemplateSpec) { p.Spec.Containers[0].Image = "web:v2" },
		"env":        func(p *corev1.PodTemplateSpec) { p.Spec.Containers[0].Env[0].Value = "slow" },
		"label":      func(p *corev1.PodTemplateSpec) { p.Labels["tier"] = "back" },
		"annotation": func(p *corev1.PodTemplateSpec) { p.Annotations = map[string]string{"restartedAt": "now"} },
	}
	for name, change := range changes {
		p := base.DeepCopy()
		change(p)
		if TemplateHash(p) == h {
			t.Errorf("changing the %s leaves the hash at %s", name, h)
		}
	}
}

func TestDesiredNamesTheTargetsTemplate(t *testing.T) {
	target := webTarget("web:v1", 3)
	target.Spec.Template.Spec.Containers = append(target.Spec.Template.Spec.Containers,
		corev1.Container{Name: "proxy", Image: "envoy:1.30"})
	f := newKubeFixture(t, spec.RouterReplicas, target)
	v, err := f.d.Desired(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := v1alpha1.VersionRef{Version: "web:v1,envoy:1.30", Template: TemplateHash(&f.deployment("web").Spec.Template)}
	if !reflect.DeepEqual(v, want) {
		t.Errorf("Desired = %+v, want %+v", v, want)
	}

	empty := newKubeFixture(t, spec.RouterReplicas)
	if _, err := empty.d.Desired(empty.ctx); !errors.Is(err, ErrTargetNotFound) {
		t.Errorf("Desired without the target = %v, want ErrTargetNotFound", err)
	}
	if err := empty.d.Install(empty.ctx, want); !errors.Is(err, ErrTargetNotFound) {
		t.Errorf("Install without the target = %v, want ErrTargetNotFound", err)
	}
}

func TestInstallCopiesTheTargetAndParksIt(t *testing.T) {
	f := newKubeFixture(t, spec.RouterReplicas, webTarget("web:v1", 3))
	v := f.desired()
	if err := f.d.Install(f.ctx, v); !errors.Is(err, ErrNotReady) {
		t.Fatalf("Install before the stable copy rolled out = %v, want ErrNotReady", err)
	}
	f.wantReplicas("web", 3) // the target serves until the copy can

	stable := f.deployment("web-stable")
	if got := replicasOf(stable); got != 3 {
		t.Errorf("stable copy has %d replicas, want the target's 3", got)
	}
	wantLabels := map[string]string{"app.kubernetes.io/name": "web", LabelManagedBy: ManagedBy, LabelRollout: "web"}
	if !maps.Equal(stable.Labels, wantLabels) {
		t.Errorf("stable copy labels = %v, want %v", stable.Labels, wantLabels)
	}
	wantAnn := map[string]string{"team": "shop", AnnotationTemplateHash: v.Template}
	if !maps.Equal(stable.Annotations, wantAnn) {
		t.Errorf("stable copy annotations = %v, want %v (no last-applied, no revision)", stable.Annotations, wantAnn)
	}
	if got, want := stable.Spec.Selector.MatchLabels, map[string]string{"app": "web", LabelRole: RoleStable}; !maps.Equal(got, want) {
		t.Errorf("stable copy selector = %v, want %v", got, want)
	}
	if got, want := stable.Spec.Template.Labels, map[string]string{"app": "web", "tier": "front", LabelRole: RoleStable}; !maps.Equal(got, want) {
		t.Errorf("stable copy pod labels = %v, want %v", got, want)
	}
	if got := TemplateHash(&stable.Spec.Template); got != v.Template {
		t.Errorf("stable copy's template hashes %s, want the target's %s", got, v.Template)
	}
	if stable.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType || *stable.Spec.ProgressDeadlineSeconds != 120 {
		t.Errorf("stable copy strategy %s, deadline %d: not the target's", stable.Spec.Strategy.Type, *stable.Spec.ProgressDeadlineSeconds)
	}
	wantOwner(t, stable)

	f.markRolledOut("web-stable")
	if err := f.d.Install(f.ctx, v); err != nil {
		t.Fatalf("Install once the stable copy rolled out: %v", err)
	}
	target := f.deployment("web")
	if replicasOf(target) != 0 || target.Annotations[AnnotationOriginalReplicas] != "3" {
		t.Errorf("target has %d replicas, original-replicas %q; want 0 and \"3\"",
			replicasOf(target), target.Annotations[AnnotationOriginalReplicas])
	}

	// Idempotent: nothing is written again.
	before := f.versions()
	if err := f.d.Install(f.ctx, v); err != nil {
		t.Fatal(err)
	}
	if after := f.versions(); !maps.Equal(before, after) {
		t.Errorf("a second Install wrote objects: resource versions %v, then %v", before, after)
	}
}

// versions maps every Deployment and Service to its resource version.
func (f *kubeFixture) versions() map[string]string {
	f.t.Helper()
	out := map[string]string{}
	var deps appsv1.DeploymentList
	var svcs corev1.ServiceList
	if err := f.c.List(f.ctx, &deps); err != nil {
		f.t.Fatal(err)
	}
	if err := f.c.List(f.ctx, &svcs); err != nil {
		f.t.Fatal(err)
	}
	for _, d := range deps.Items {
		out["deployment/"+d.Name] = d.ResourceVersion
	}
	for _, s := range svcs.Items {
		out["service/"+s.Name] = s.ResourceVersion
	}
	return out
}

func wantOwner(t *testing.T, obj metav1.Object) {
	t.Helper()
	ref := metav1.GetControllerOf(obj)
	if ref == nil || ref.APIVersion != "pipit.dev/v1alpha1" || ref.Kind != "Rollout" || ref.Name != "web" || ref.UID != "rollout-uid" {
		t.Errorf("%s's controller is %+v, want Rollout web", obj.GetName(), ref)
	}
}

func TestInstallRefusesAForeignCopy(t *testing.T) {
	theirs := webTarget("web:v0", 1)
	theirs.Name = "web-stable"
	theirs.Labels = map[string]string{"app": "legacy"}
	f := newKubeFixture(t, spec.RouterReplicas, webTarget("web:v1", 3), theirs)
	err := f.d.Install(f.ctx, f.desired())
	if err == nil || !strings.Contains(err.Error(), "not managed by rollout web") || !strings.Contains(err.Error(), "shop/web-stable") {
		t.Fatalf("Install over someone else's web-stable = %v, want a refusal naming it", err)
	}
	if got := f.deployment("web-stable").Spec.Template.Spec.Containers[0].Image; got != "web:v0" {
		t.Errorf("their Deployment now runs %s", got)
	}
}

func TestServicesSelectTheVersions(t *testing.T) {
	f := newKubeFixture(t, spec.RouterReplicas, webTarget("web:v1", 3))
	if err := f.d.EnsureServices(f.ctx); err != nil {
		t.Fatal(err)
	}
	want := map[string]map[string]string{
		"web":        {"app": "web"},
		"web-stable": {"app": "web", LabelRole: RoleStable},
		"web-canary": {"app": "web", LabelRole: RoleCanary},
	}
	wantPort := corev1.ServicePort{Name: "web-http", Protocol: corev1.ProtocolTCP, Port: 80, TargetPort: intstr.FromInt32(8080)}
	for name, sel := range want {
		svc := f.service(name)
		if !maps.Equal(svc.Spec.Selector, sel) {
			t.Errorf("Service %s selects %v, want %v", name, svc.Spec.Selector, sel)
		}
		if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0] != wantPort {
			t.Errorf("Service %s ports = %+v, want %+v", name, svc.Spec.Ports, wantPort)
		}
		if svc.Labels[LabelManagedBy] != ManagedBy || svc.Labels[LabelRollout] != "web" {
			t.Errorf("Service %s labels = %v", name, svc.Labels)
		}
		wantOwner(t, svc)
	}
}

func TestServicesKeepFieldsPipitDoesNotOwn(t *testing.T) {
	users := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: testNS, Labels: map[string]string{"team": "shop"}},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": "web", "track": "main"},
			Ports:    []corev1.ServicePort{{Name: "https", Port: 443, TargetPort: intstr.FromInt32(8443)}},
		},
	}
	ours := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{
			Name: "web-stable", Namespace: testNS,
			Labels:      map[string]string{LabelManagedBy: ManagedBy, LabelRollout: "web"},
			Annotations: map[string]string{"cloud.example/lb": "internal"},
		},
		Spec: corev1.ServiceSpec{
			ClusterIP: "10.0.0.7", ClusterIPs: []string{"10.0.0.7"}, Type: corev1.ServiceTypeNodePort,
			Selector: map[string]string{"app": "old"},
			Ports:    []corev1.ServicePort{{Name: "web-http", Port: 81, NodePort: 30080, TargetPort: intstr.FromInt32(9)}},
		},
	}
	usersCanary := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web-canary", Namespace: testNS},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"tier": "front"}, // both versions' pods
			Ports:    []corev1.ServicePort{{Port: 80}},
		},
	}
	f := newKubeFixture(t, spec.RouterReplicas, webTarget("web:v1", 3), users, ours, usersCanary)
	if err := f.d.EnsureServices(f.ctx); err != nil {
		t.Fatal(err)
	}

	apex := f.service("web")
	if !maps.Equal(apex.Spec.Selector, map[string]string{"app": "web"}) {
		t.Errorf("the user's apex Service selects %v, want the target's pods", apex.Spec.Selector)
	}
	if got := f.service("web-canary").Spec.Selector; !maps.Equal(got, map[string]string{"app": "web", LabelRole: RoleCanary}) {
		t.Errorf("the user's canary Service selects %v, want the canary's pods only", got)
	}

	// A selector that already picks the target's pods stays the user's.
	narrow := map[string]string{"app": "web", "tier": "front"}
	apex.Spec.Selector = narrow
	if err := f.c.Update(f.ctx, apex); err != nil {
		t.Fatal(err)
	}
	if err := f.d.EnsureServices(f.ctx); err != nil {
		t.Fatal(err)
	}
	apex = f.service("web")
	if !maps.Equal(apex.Spec.Selector, narrow) {
		t.Errorf("the user's apex Service selector changed from %v to %v", narrow, apex.Spec.Selector)
	}
	if len(apex.Spec.Ports) != 1 || apex.Spec.Ports[0].Port != 443 {
		t.Errorf("the user's apex Service ports changed to %+v", apex.Spec.Ports)
	}
	if len(apex.OwnerReferences) != 0 || apex.Labels[LabelManagedBy] != "" {
		t.Errorf("the user's Service was taken over: owners %v, labels %v", apex.OwnerReferences, apex.Labels)
	}

	stable := f.service("web-stable")
	if stable.Spec.ClusterIP != "10.0.0.7" || stable.Spec.Type != corev1.ServiceTypeNodePort || stable.Annotations["cloud.example/lb"] != "internal" {
		t.Errorf("stable Service lost fields pipit does not own: %+v", stable)
	}
	wantPort := corev1.ServicePort{Name: "web-http", Protocol: corev1.ProtocolTCP, Port: 80, NodePort: 30080, TargetPort: intstr.FromInt32(8080)}
	if len(stable.Spec.Ports) != 1 || stable.Spec.Ports[0] != wantPort {
		t.Errorf("stable Service ports = %+v, want %+v", stable.Spec.Ports, wantPort)
	}
	if !maps.Equal(stable.Spec.Selector, map[string]string{"app": "web", LabelRole: RoleStable}) {
		t.Errorf("stable Service selects %v", stable.Spec.Selector)
	}
}

func TestServicePortDefaults(t *testing.T) {
	noPorts := webTarget("web:v1", 1)
	noPorts.Spec.Template.Spec.Containers[0].Ports = nil
	cases := []struct {
		name         string
		target       *appsv1.Deployment
		targetPort   int32
		wantName     string
		wantTarget   int32
		wantServPort int32
	}{
		{"first container port", webTarget("web:v1", 1), 0, "web-http", 8080, 80},
		{"explicit target port", webTarget("web:v1", 1), 9090, "http", 9090, 80},
		{"no container port", noPorts, 0, "http", 80, 80},
	}
	for _, c := range cases {
		p := servicePort(80, c.targetPort, c.target)
		if p.Name != c.wantName || p.TargetPort != intstr.FromInt32(c.wantTarget) || p.Port != c.wantServPort {
			t.Errorf("%s: port %+v, want %s %d→%d", c.name, p, c.wantName, c.wantServPort, c.wantTarget)
		}
	}
}

func TestCanaryRunsFullSizeThenIsPromotedAndRetired(t *testing.T) {
	f := newKubeFixture(t, spec.RouterGatewayAPI, webTarget("web:v1", 3))
	v1 := f.install()
	v2 := f.setImage("web:v2")
	if v2.Template == v1.Template || v2.Version != "web:v2" {
		t.Fatalf("new image gives version %+v after %+v", v2, v1)
	}
	// A weight left by a replica router this rollout no longer uses does
	// not size the canary.
	stale := f.deployment("web-stable")
	stale.Annotations[AnnotationWeight] = "10%"
	if err := f.c.Update(f.ctx, stale); err != nil {
		t.Fatal(err)
	}
	if err := f.d.DeployCanary(f.ctx, v2); err != nil {
		t.Fatal(err)
	}
	canary := f.deployment("web-canary")
	if got := replicasOf(canary); got != 3 {
		t.Errorf("canary has %d replicas, want the stable copy's 3", got)
	}
	if canary.Annotations[AnnotationTemplateHash] != v2.Template || canary.Spec.Template.Spec.Containers[0].Image != "web:v2" {
		t.Errorf("canary copy runs %s (hash %s), want web:v2", canary.Spec.Template.Spec.Containers[0].Image, canary.Annotations[AnnotationTemplateHash])
	}
	if !maps.Equal(canary.Spec.Selector.MatchLabels, map[string]string{"app": "web", LabelRole: RoleCanary}) ||
		canary.Spec.Template.Labels[LabelRole] != RoleCanary {
		t.Errorf("canary selector %v, pod labels %v", canary.Spec.Selector.MatchLabels, canary.Spec.Template.Labels)
	}
	wantOwner(t, canary)

	o := f.d.Observe(f.ctx)
	if o.CanaryVersion != v2.Template || o.CanaryHealth != rollout.HealthUnknown || o.StableVersion != v1.Template {
		t.Errorf("canary rolling out: Observe = %+v", o)
	}
	f.markRolledOut("web-canary")
	if o := f.d.Observe(f.ctx); o.CanaryHealth != rollout.HealthUp || o.CanaryVersion != v2.Template {
		t.Errorf("canary rolled out: Observe = %+v, want %s up", o, v2.Template)
	}

	if err := f.d.Promote(f.ctx, v2); err != nil {
		t.Fatal(err)
	}
	stable := f.deployment("web-stable")
	if stable.Spec.Template.Spec.Containers[0].Image != "web:v2" || stable.Annotations[AnnotationTemplateHash] != v2.Template ||
		stable.Spec.Template.Labels[LabelRole] != RoleStable || stable.Spec.Selector.MatchLabels[LabelRole] != RoleStable {
		t.Errorf("promoted stable copy: image %s, hash %s, pod labels %v, selector %v",
			stable.Spec.Template.Spec.Containers[0].Image, stable.Annotations[AnnotationTemplateHash],
			stable.Spec.Template.Labels, stable.Spec.Selector.MatchLabels)
	}
	f.wantReplicas("web-stable", 3)
	f.setStatus("web-stable", appsv1.DeploymentStatus{Replicas: 4, UpdatedReplicas: 1, AvailableReplicas: 3})
	if o := f.d.Observe(f.ctx); o.StableVersion != "" {
		t.Errorf("stable copy mid-rollout reports version %q, want none yet", o.StableVersion)
	}
	f.markRolledOut("web-stable")
	if o := f.d.Observe(f.ctx); o.StableVersion != v2.Template {
		t.Errorf("stable copy rolled out reports %q, want %s", o.StableVersion, v2.Template)
	}

	if err := f.d.RetireCanary(f.ctx, v2); err != nil {
		t.Fatal(err)
	}
	f.wantReplicas("web-canary", 0)
	if o := f.d.Observe(f.ctx); o.CanaryVersion != "" || o.CanaryHealth != rollout.HealthUnknown {
		t.Errorf("retired canary: Observe = %+v, want no canary", o)
	}
	f.wantReplicas("web", 0)
}

func TestDeployCanaryNeedsTheTemplate(t *testing.T) {
	f := newKubeFixture(t, spec.RouterGatewayAPI, webTarget("web:v1", 2))
	f.install()
	v2 := f.deployCanary("web:v2")
	if err := f.d.RetireCanary(f.ctx, v2); err != nil {
		t.Fatal(err)
	}
	v3 := f.setImage("web:v3")
	// The canary copy still holds v2: deploying it again works.
	if err := f.d.DeployCanary(f.ctx, v2); err != nil {
		t.Fatalf("DeployCanary of the canary copy's own template: %v", err)
	}
	canary := f.deployment("web-canary")
	if canary.Spec.Template.Spec.Containers[0].Image != "web:v2" || replicasOf(canary) != 2 {
		t.Errorf("canary runs %s ×%d, want web:v2 ×2", canary.Spec.Template.Spec.Containers[0].Image, replicasOf(canary))
	}
	gone := v1alpha1.VersionRef{Version: "web:v9", Template: "0123456789"}
	err := f.d.DeployCanary(f.ctx, gone)
	if err == nil || !strings.Contains(err.Error(), "changed again") || !strings.Contains(err.Error(), v3.Template) {
		t.Errorf("DeployCanary of a template nowhere to be found = %v, want an error naming the target's %s", err, v3.Template)
	}
}

func TestPromoteFindsAnEarlierTemplateForUndo(t *testing.T) {
	f := newKubeFixture(t, spec.RouterGatewayAPI, webTarget("web:v1", 2))
	v1 := f.install()
	old := f.deployment("web-stable")
	v2 := f.setImage("web:v2")
	for _, step := range []func(context.Context, v1alpha1.VersionRef) error{f.d.DeployCanary, f.d.Promote, f.d.RetireCanary} {
		if err := step(f.ctx, v2); err != nil {
			t.Fatal(err)
		}
	}
	// The Deployment controller keeps v1 in the stable copy's old
	// ReplicaSet, with its pod-template-hash label.
	tmpl := old.Spec.Template.DeepCopy()
	tmpl.Labels[appsv1.DefaultDeploymentUniqueLabelKey] = "6c9d7b"
	rs := &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{
			Name: "web-stable-6c9d7b", Namespace: testNS, Labels: tmpl.Labels,
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "apps/v1", Kind: "Deployment", Name: "web-stable", UID: old.UID, Controller: new(true),
			}},
		},
		Spec: appsv1.ReplicaSetSpec{Selector: old.Spec.Selector, Template: *tmpl},
	}
	if err := f.c.Create(f.ctx, rs); err != nil {
		t.Fatal(err)
	}
	f.setImage("web:v3") // the target moved on meanwhile

	if err := f.d.Promote(f.ctx, v1); err != nil {
		t.Fatalf("Promote back to %s: %v", v1.Version, err)
	}
	stable := f.deployment("web-stable")
	if stable.Spec.Template.Spec.Containers[0].Image != "web:v1" || stable.Annotations[AnnotationTemplateHash] != v1.Template {
		t.Errorf("after undo the stable copy runs %s (hash %s), want web:v1 (%s)",
			stable.Spec.Template.Spec.Containers[0].Image, stable.Annotations[AnnotationTemplateHash], v1.Template)
	}
	if _, ok := stable.Spec.Template.Labels[appsv1.DefaultDeploymentUniqueLabelKey]; ok {
		t.Error("the ReplicaSet's pod-template-hash label leaked into the stable copy's template")
	}
}

func TestObserveCanaryHealth(t *testing.T) {
	deadline := appsv1.DeploymentCondition{
		Type: appsv1.DeploymentProgressing, Status: corev1.ConditionFalse,
		Reason: "ProgressDeadlineExceeded", Message: `ReplicaSet "web-canary-1" has timed out progressing.`,
	}
	cases := []struct {
		name       string
		generation int64
		status     appsv1.DeploymentStatus
		want       rollout.Health
	}{
		{"rolled out", 2, appsv1.DeploymentStatus{ObservedGeneration: 2, Replicas: 3, UpdatedReplicas: 3, AvailableReplicas: 3}, rollout.HealthUp},
		{"old generation observed", 3, appsv1.DeploymentStatus{ObservedGeneration: 2, Replicas: 3, UpdatedReplicas: 3, AvailableReplicas: 3}, rollout.HealthUnknown},
		{"some updated", 2, appsv1.DeploymentStatus{ObservedGeneration: 2, Replicas: 3, UpdatedReplicas: 2, AvailableReplicas: 3}, rollout.HealthUnknown},
		{"not all available", 2, appsv1.DeploymentStatus{ObservedGeneration: 2, Replicas: 3, UpdatedReplicas: 3, AvailableReplicas: 2}, rollout.HealthUnknown},
		{"old pods left", 2, appsv1.DeploymentStatus{ObservedGeneration: 2, Replicas: 4, UpdatedReplicas: 3, AvailableReplicas: 3}, rollout.HealthUnknown},
		{"progress deadline exceeded", 2, appsv1.DeploymentStatus{ObservedGeneration: 2, Replicas: 3, Conditions: []appsv1.DeploymentCondition{deadline}}, rollout.HealthDown},
		{"deadline of the previous template", 3, appsv1.DeploymentStatus{ObservedGeneration: 2, Replicas: 3, Conditions: []appsv1.DeploymentCondition{deadline}}, rollout.HealthUnknown},
	}
	for _, c := range cases {
		canary := webTarget("web:v2", 3)
		canary.Name, canary.Generation, canary.Status = "web-canary", c.generation, c.status
		canary.Annotations = map[string]string{AnnotationTemplateHash: "abc"}
		f := newKubeFixture(t, spec.RouterGatewayAPI, canary)
		o := f.d.Observe(f.ctx)
		if o.CanaryHealth != c.want || o.CanaryVersion != "abc" {
			t.Errorf("%s: Observe = %+v, want health %v of abc", c.name, o, c.want)
		}
		if down := c.want == rollout.HealthDown; o.CanaryFailed != down || down != strings.Contains(o.CanaryReason, "timed out progressing") {
			t.Errorf("%s: failed %v, reason %q", c.name, o.CanaryFailed, o.CanaryReason)
		}
	}
}

func TestSplitReplicas(t *testing.T) {
	pct := v1alpha1.PercentOf
	cases := []struct {
		total          int32
		w              v1alpha1.Percent
		live           bool
		stable, canary int32
	}{
		{4, 0, true, 4, 1},         // a live canary keeps one replica at 0%
		{4, pct(25), true, 3, 1},   // 1 of 4
		{4, pct(30), true, 2, 2},   // ceil(1.2)
		{4, pct(50), true, 2, 2},   // half
		{4, pct(99), true, 1, 4},   // stable keeps one below 100%
		{4, pct(100), true, 0, 4},  // all on the canary
		{10, 1, true, 9, 1},        // 0.001% still gets a replica
		{4, pct(50), false, 4, 0},  // no canary to scale
		{0, pct(50), true, 1, 1},   // at least one replica to share
		{3, pct(200), true, 0, 3},  // clamped to 100%
		{3, -pct(10), true, 3, 1},  // clamped to 0%
		{1, pct(5), true, 1, 1},    // one replica: both run
		{5, pct(100), false, 5, 0}, // retired: stable keeps all
	}
	for _, c := range cases {
		s, k := splitReplicas(c.total, c.w, c.live)
		if s != c.stable || k != c.canary {
			t.Errorf("splitReplicas(%d, %s, live %v) = %d, %d; want %d, %d", c.total, c.w, c.live, s, k, c.stable, c.canary)
		}
	}
}

func TestScaleForWeightSizesTheCopies(t *testing.T) {
	f := newKubeFixture(t, spec.RouterReplicas, webTarget("web:v1", 4))
	f.install()
	v2 := f.deployCanary("web:v2")
	f.wantReplicas("web-canary", 1) // the replica router starts at 0%

	steps := []struct {
		w              v1alpha1.Percent
		stable, canary int32
	}{
		{v1alpha1.PercentOf(25), 3, 1},
		{v1alpha1.PercentOf(75), 1, 3},
	}
	for _, s := range steps {
		if err := f.d.ScaleForWeight(f.ctx, s.w); err != nil {
			t.Fatal(err)
		}
		f.wantReplicas("web-stable", s.stable)
		f.wantReplicas("web-canary", s.canary)
	}
	if got := f.deployment("web-stable").Annotations[AnnotationWeight]; got != "75%" {
		t.Errorf("weight annotation %q, want 75%%", got)
	}

	// A restarted controller re-applies the canary: the weight's share
	// stays, it does not go back to a full-size canary.
	restarted := NewDeployment(f.c, f.d.owner, f.d.plan, nil, nil)
	if err := restarted.DeployCanary(f.ctx, v2); err != nil {
		t.Fatal(err)
	}
	f.wantReplicas("web-canary", 3)

	if err := f.d.ScaleForWeight(f.ctx, v1alpha1.FullWeight); err != nil {
		t.Fatal(err)
	}
	f.wantReplicas("web-stable", 0)
	f.wantReplicas("web-canary", 4)
	if err := f.d.Promote(f.ctx, v2); err != nil {
		t.Fatal(err)
	}
	f.wantReplicas("web-stable", 4) // promoted at full size
	if err := f.d.ScaleForWeight(f.ctx, 0); err != nil {
		t.Fatal(err)
	}
	f.wantReplicas("web-canary", 1)
	if err := f.d.RetireCanary(f.ctx, v2); err != nil {
		t.Fatal(err)
	}
	if err := f.d.ScaleForWeight(f.ctx, 0); err != nil {
		t.Fatal(err)
	}
	f.wantReplicas("web-canary", 0) // retired stays retired
	f.wantReplicas("web-stable", 4)
}

func TestAutoscaledTargetGetsAnAutoscaledStableCopy(t *testing.T) {
	users := &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: testNS},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "web"},
			MinReplicas:    new(int32(2)), MaxReplicas: 10,
			Metrics: []autoscalingv2.MetricSpec{{
				Type: autoscalingv2.ResourceMetricSourceType,
				Resource: &autoscalingv2.ResourceMetricSource{
					Name:   corev1.ResourceCPU,
					Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: new(int32(70))},
				},
			}},
		},
	}
	other := users.DeepCopy()
	other.Name, other.Spec.ScaleTargetRef.Name = "api", "api"
	f := newKubeFixture(t, spec.RouterReplicas, webTarget("web:v1", 3), users, other)
	f.install()

	var hpa autoscalingv2.HorizontalPodAutoscaler
	if err := f.c.Get(f.ctx, types.NamespacedName{Namespace: testNS, Name: "web-stable"}, &hpa); err != nil {
		t.Fatalf("stable copy's autoscaler: %v", err)
	}
	wantSpec := *users.Spec.DeepCopy()
	wantSpec.ScaleTargetRef.Name = "web-stable"
	if !equality.Semantic.DeepEqual(hpa.Spec, wantSpec) {
		t.Errorf("stable copy's autoscaler spec = %+v, want %+v", hpa.Spec, wantSpec)
	}
	wantOwner(t, &hpa)
	if hpa.Labels[LabelManagedBy] != ManagedBy {
		t.Errorf("autoscaler labels %v", hpa.Labels)
	}

	// The autoscaler sized the stable copy; pipit leaves that alone.
	stable := f.deployment("web-stable")
	stable.Spec.Replicas = new(int32(7))
	if err := f.c.Update(f.ctx, stable); err != nil {
		t.Fatal(err)
	}
	v2 := f.setImage("web:v2")
	for _, step := range []func(context.Context, v1alpha1.VersionRef) error{f.d.DeployCanary, f.d.Promote} {
		if err := step(f.ctx, v2); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.d.ScaleForWeight(f.ctx, v1alpha1.PercentOf(50)); err != nil {
		t.Fatal(err)
	}
	f.wantReplicas("web-stable", 7)
	f.wantReplicas("web-canary", 2) // ceil(3 × 50%) of the target's replicas

	// The user drops autoscaling: so does the stable copy.
	if err := f.c.Delete(f.ctx, users); err != nil {
		t.Fatal(err)
	}
	if err := f.d.Promote(f.ctx, v2); err != nil {
		t.Fatal(err)
	}
	err := f.c.Get(f.ctx, types.NamespacedName{Namespace: testNS, Name: "web-stable"}, &hpa)
	if !apierrors.IsNotFound(err) {
		t.Errorf("stable copy's autoscaler after the user's was deleted: %v, want NotFound", err)
	}
	f.wantReplicas("web-stable", 3)
	if err := f.c.Get(f.ctx, types.NamespacedName{Namespace: testNS, Name: "api"}, &hpa); err != nil {
		t.Errorf("another workload's autoscaler: %v", err)
	}
}

func TestReleaseHandsTheServiceBack(t *testing.T) {
	f := newKubeFixture(t, spec.RouterGatewayAPI, webTarget("web:v1", 3))
	f.install()
	f.wantReplicas("web", 0)
	f.setStatus("web", appsv1.DeploymentStatus{})
	if err := f.d.Release(f.ctx); !errors.Is(err, ErrNotReady) {
		t.Fatalf("Release before the target rolled out = %v, want ErrNotReady", err)
	}
	target := f.deployment("web")
	if replicasOf(target) != 3 || target.Annotations[AnnotationOriginalReplicas] != "3" {
		t.Errorf("releasing target has %d replicas, original-replicas %q; want 3, kept until it rolled out",
			replicasOf(target), target.Annotations[AnnotationOriginalReplicas])
	}
	if err := f.d.Release(f.ctx); !errors.Is(err, ErrNotReady) {
		t.Fatalf("Release again before the target rolled out = %v, want ErrNotReady", err)
	}
	f.markRolledOut("web")
	if err := f.d.Release(f.ctx); err != nil {
		t.Fatalf("Release once the target rolled out: %v", err)
	}
	target = f.deployment("web")
	if _, ok := target.Annotations[AnnotationOriginalReplicas]; ok || replicasOf(target) != 3 {
		t.Errorf("released target: %d replicas, annotations %v", replicasOf(target), target.Annotations)
	}
	// The apex Service pipit created outlives the Rollout; the per-version
	// ones go with it.
	var apex, stable corev1.Service
	if err := f.c.Get(f.ctx, types.NamespacedName{Namespace: testNS, Name: "web"}, &apex); err != nil {
		t.Fatal(err)
	}
	if len(apex.OwnerReferences) != 0 || apex.Labels[LabelManagedBy] != "" || apex.Labels[LabelRollout] != "" {
		t.Errorf("released apex Service still pipit's: owners %v, labels %v", apex.OwnerReferences, apex.Labels)
	}
	if err := f.c.Get(f.ctx, types.NamespacedName{Namespace: testNS, Name: "web-stable"}, &stable); err != nil {
		t.Fatal(err)
	}
	if len(stable.OwnerReferences) != 1 {
		t.Errorf("the stable Service lost its owner: %v", stable.OwnerReferences)
	}

	// Released already: nothing to wait for, even while it rolls out.
	f.setStatus("web", appsv1.DeploymentStatus{})
	if err := f.d.Release(f.ctx); err != nil {
		t.Errorf("Release of a released target = %v", err)
	}
	if err := f.c.Delete(f.ctx, target); err != nil {
		t.Fatal(err)
	}
	if err := f.d.Release(f.ctx); err != nil {
		t.Errorf("Release with the target gone = %v, want nothing to do", err)
	}
}

func TestReleaseGivesUpOnATargetThatCannotRollOut(t *testing.T) {
	f := newKubeFixture(t, spec.RouterGatewayAPI, webTarget("web:v1", 2))
	f.install()
	f.setStatus("web", appsv1.DeploymentStatus{Conditions: []appsv1.DeploymentCondition{{
		Type: appsv1.DeploymentProgressing, Status: corev1.ConditionFalse, Reason: "ProgressDeadlineExceeded",
	}}})
	if err := f.d.Release(f.ctx); err != nil {
		t.Fatalf("Release of a target past its progress deadline = %v, want it handed back as it is", err)
	}
	target := f.deployment("web")
	if _, ok := target.Annotations[AnnotationOriginalReplicas]; ok || replicasOf(target) != 2 {
		t.Errorf("released target: %d replicas, annotations %v", replicasOf(target), target.Annotations)
	}
}

func TestInstallReportsAStableCopyThatCannotRollOut(t *testing.T) {
	f := newKubeFixture(t, spec.RouterGatewayAPI, webTarget("web:v1", 2))
	v := f.desired()
	if err := f.d.Install(f.ctx, v); !errors.Is(err, ErrNotReady) {
		t.Fatalf("first Install = %v, want ErrNotReady", err)
	}
	f.setStatus("web-stable", appsv1.DeploymentStatus{Conditions: []appsv1.DeploymentCondition{{
		Type: appsv1.DeploymentProgressing, Status: corev1.ConditionFalse, Reason: "ProgressDeadlineExceeded",
		Message: "timed out progressing",
	}}})
	err := f.d.Install(f.ctx, v)
	if err == nil || errors.Is(err, ErrNotReady) || !strings.Contains(err.Error(), "timed out progressing") {
		t.Errorf("Install with a stuck stable copy = %v, want an error saying why", err)
	}
	f.wantReplicas("web", 2) // the user's Deployment keeps serving
}

func TestReleaseWithoutTheAnnotationUsesTheStableCopy(t *testing.T) {
	f := newKubeFixture(t, spec.RouterGatewayAPI, webTarget("web:v1", 5))
	f.install()
	target := f.deployment("web")
	delete(target.Annotations, AnnotationOriginalReplicas)
	if err := f.c.Update(f.ctx, target); err != nil {
		t.Fatal(err)
	}
	if err := f.d.Release(f.ctx); err != nil {
		t.Fatal(err)
	}
	f.wantReplicas("web", 5)
}
