package target

import (
	"context"
	"fmt"
	"slices"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"github.com/pipit-dev/pipit/internal/kubewrite"
)

// defaultPortName names the Services' port when the container port has no
// name of its own.
const defaultPortName = "http"

// EnsureServices creates or updates the apex Service, which selects both
// copies, the stable and canary Services, which select one each, and the
// preview Service of a blue-green rollout, which selects the canary copy.
// While the canary copy serves the stable version (see promoteBySwitch),
// the apex and stable Services select it alone; in a blue-green rollout
// the apex Service selects the serving copy alone once the target is held
// at zero, so the new version gets no user traffic before the switch
// (unless Istio routes by subsets of the apex Service: see
// routesBySubsets).
func (d *Deployment) EnsureServices(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	t, err := d.target(ctx)
	if err != nil {
		return err
	}
	return d.ensureServices(ctx, t)
}

// ensureServices is EnsureServices for the target t, read already.
func (d *Deployment) ensureServices(ctx context.Context, t *appsv1.Deployment) error {
	if t.Spec.Selector == nil || len(t.Spec.Selector.MatchLabels) == 0 {
		return fmt.Errorf("the selector of Deployment %s has no matchLabels, which the Services need to select its pods",
			d.name(t.Name))
	}
	stable, err := d.getCopy(ctx, d.plan.StableWorkload)
	if err != nil {
		return err
	}
	serving, apex := servingRole(stable), ""
	switch {
	case serving == RoleCanary:
		apex = RoleCanary // the stable copy's pods are the warm previous version
	case d.plan.BlueGreen && replicasOf(t) == 0 && !d.routesBySubsets():
		apex = RoleStable
	}
	port := servicePort(d.plan.Port, d.plan.TargetPort, t)
	services := []serviceRole{
		{d.plan.Service, apex},
		{d.plan.StableService, serving},
		{d.plan.CanaryService, RoleCanary},
	}
	if d.plan.PreviewService != "" {
		services = append(services, serviceRole{d.plan.PreviewService, RoleCanary})
	}
	for _, s := range services {
		selector := merged(nil, t.Spec.Selector.MatchLabels)
		pods := merged(nil, t.Spec.Template.Labels)
		if s.role != "" {
			selector[LabelRole] = s.role
			pods[LabelRole] = s.role
		}
		if err := d.applyService(ctx, s.name, selector, pods, port); err != nil {
			return err
		}
	}
	return nil
}

// serviceRole names a Service and the role of the pods it selects, none
// for both copies'.
type serviceRole struct{ name, role string }

// applyService writes the fields of one Service that pipit owns: labels,
// owner, selector and port. The API server's and other writers' fields
// (clusterIP, type, annotations) stay. A Service the user made before is
// not pipit's: it keeps its ports and its owners (garbage collection does
// not delete it), and its selector unless that misses the pods (labelled
// pods) the Service is for.
func (d *Deployment) applyService(ctx context.Context, name string, selector, pods map[string]string, port corev1.ServicePort) error {
	_, _, err := kubewrite.CreateOrUpdate(ctx, d.c, &corev1.Service{ObjectMeta: d.meta(name)}, func(svc *corev1.Service) error {
		if svc.ResourceVersion != "" && !d.ours(svc) {
			if !selects(svc.Spec.Selector, pods) {
				svc.Spec.Selector = selector
			}
			return nil
		}
		svc.Spec.Selector = selector
		svc.Labels = merged(svc.Labels, d.labels())
		if err := controllerutil.SetControllerReference(d.owner, svc, ownerScheme); err != nil {
			return err
		}
		for _, p := range svc.Spec.Ports {
			if p.Name == port.Name {
				port.NodePort = p.NodePort // allocated by the API server for NodePort Services
			}
		}
		svc.Spec.Ports = []corev1.ServicePort{port}
		return nil
	})
	if err != nil {
		return fmt.Errorf("write Service %s: %w", d.name(name), err)
	}
	return nil
}

// servicePort is the Services' port: port to targetPort, else to the
// first port of the target's first container, else to port itself. It
// takes the container port's name, which tells meshes its protocol.
func servicePort(port, targetPort int32, t *appsv1.Deployment) corev1.ServicePort {
	var containerPorts []corev1.ContainerPort
	if cs := t.Spec.Template.Spec.Containers; len(cs) > 0 {
		containerPorts = cs[0].Ports
	}
	if targetPort == 0 && len(containerPorts) > 0 {
		targetPort = containerPorts[0].ContainerPort
	}
	if targetPort == 0 {
		targetPort = port
	}
	name := defaultPortName
	for _, cp := range containerPorts {
		if cp.ContainerPort == targetPort && cp.Name != "" {
			name = cp.Name
			break
		}
	}
	return corev1.ServicePort{Name: name, Protocol: corev1.ProtocolTCP, Port: port, TargetPort: intstr.FromInt32(targetPort)}
}

// selects reports whether a Service selector picks exactly the pods
// labelled pods among pipit's copies: it is not empty, every label it asks
// for is on the pods, and it asks for the role when the pods have one.
func selects(selector, pods map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if pods[k] != v {
			return false
		}
	}
	_, podsRole := pods[LabelRole]
	_, selRole := selector[LabelRole]
	return podsRole == selRole
}

// releaseApexService hands the apex Service to the user when pipit created
// it: without the Rollout's owner reference and pipit's labels it outlives
// the Rollout, and the user's routes, which Remove pointed back at it,
// keep reaching the user's Deployment t, whose pods its selector picks
// again (it may have asked for one copy's role).
func (d *Deployment) releaseApexService(ctx context.Context, t *appsv1.Deployment) error {
	_, _, err := kubewrite.Update(ctx, d.c, &corev1.Service{ObjectMeta: d.meta(d.plan.Service)}, func(svc *corev1.Service) error {
		if !d.ours(svc) {
			return nil // the user's own Service: pipit never owned it
		}
		svc.OwnerReferences = slices.DeleteFunc(svc.OwnerReferences, func(r metav1.OwnerReference) bool {
			return r.UID == d.owner.UID
		})
		delete(svc.Labels, LabelManagedBy)
		delete(svc.Labels, LabelRollout)
		if t.Spec.Selector != nil && len(t.Spec.Selector.MatchLabels) > 0 {
			svc.Spec.Selector = merged(nil, t.Spec.Selector.MatchLabels)
		}
		return nil
	})
	if client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("release Service %s: %w", d.name(d.plan.Service), err)
	}
	return nil
}
