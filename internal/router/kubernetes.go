package router

import (
	"fmt"
	"log/slog"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/rollout"
	"github.com/pipit-dev/pipit/internal/spec"
)

// ForKubernetes builds the Kubernetes router the plan names: the one place
// that turns a router kind into a router. A kind it does not know is an
// error rather than a quiet fall back to replica counts, which would split
// traffic in a way nobody asked for.
func ForKubernetes(c client.Client, r *v1alpha1.Rollout, kp spec.KubePlan, scaler Scaler, log *slog.Logger) (rollout.RouteRemover, error) {
	switch kp.Router {
	case spec.RouterGatewayAPI:
		return NewGatewayAPI(c, r, kp, log), nil
	case spec.RouterIstio:
		return NewIstio(c, r, kp, log), nil
	case spec.RouterReplicas:
		return &Replicas{Scaler: scaler}, nil
	}
	return nil, fmt.Errorf("rollout %s/%s: unknown router kind %q (want %s, %s or %s)",
		r.Namespace, r.Name, kp.Router, spec.RouterReplicas, spec.RouterGatewayAPI, spec.RouterIstio)
}
