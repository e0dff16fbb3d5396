package kubefixture

import (
	"context"
	"fmt"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/pipit-dev/pipit/api/v1alpha1"
)

// Deployment is a user's Deployment as the tests write one, with no
// namespace yet: its selector and pods have the label app=name, its one
// container "app" runs image with port 8080 named http, and the Deployment
// itself also has the label team=shop, which no selector uses, so a test
// can check that pipit carries the user's labels over to its copies.
func Deployment(name, image string, replicas int32) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": name, "team": "shop"}},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name: "app", Image: image, Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
				}}},
			},
		},
	}
}

// UpdateDeployment reads the Deployment key, applies change and writes it
// back, reading again when another writer got in between, as kubectl does.
func UpdateDeployment(ctx context.Context, kc client.Client, key types.NamespacedName, change func(*appsv1.Deployment)) error {
	return retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		var d appsv1.Deployment
		if err := kc.Get(ctx, key, &d); err != nil {
			return err
		}
		change(&d)
		return kc.Update(ctx, &d)
	})
}

// SetImage changes the image of the Deployment's first container, as
// `kubectl set image` does: a new pod template, a new version to roll out.
func SetImage(ctx context.Context, kc client.Client, key types.NamespacedName, image string) error {
	return UpdateDeployment(ctx, kc, key, func(d *appsv1.Deployment) {
		d.Spec.Template.Spec.Containers[0].Image = image
	})
}

// RolloutYAML is the manifest of a Rollout named name whose target is the
// Deployment of the same name; spec holds the rest of the Rollout's spec,
// as YAML indented by two spaces, such as "  strategy:\n    steps: ...".
func RolloutYAML(name, spec string) string {
	return fmt.Sprintf("apiVersion: %s\nkind: %s\nmetadata: {name: %s}\nspec:\n  targetRef: {name: %s}\n%s",
		v1alpha1.APIVersion, v1alpha1.KindRollout, name, name, strings.TrimPrefix(spec, "\n"))
}

// ParseRollout decodes a Rollout manifest strictly: an unknown or
// misspelt field is an error, not a field silently left out.
func ParseRollout(manifest string) (*v1alpha1.Rollout, error) {
	var r v1alpha1.Rollout
	if err := yaml.UnmarshalStrict([]byte(manifest), &r); err != nil {
		return nil, fmt.Errorf("rollout manifest: %w", err)
	}
	return &r, nil
}

// History formats a Rollout's status.history for a failure message, one
// event a line, oldest first.
func History(r *v1alpha1.Rollout) string {
	var b strings.Builder
	for _, e := range r.Status.History {
		fmt.Fprintf(&b, "  %s %s %s %s: %s\n", e.Time.Format("15:04:05.000"), e.Reason, e.Phase, e.Weight, e.Message)
	}
	return b.String()
}
