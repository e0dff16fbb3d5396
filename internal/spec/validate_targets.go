package spec

import (
	"fmt"

	"github.com/pipit-dev/pipit/api/v1alpha1"
)

// MaxTargetRefs bounds the Deployments of one coordinated rollout: each
// is read and written on every tick, and the status lists them all.
const MaxTargetRefs = 20

// kubernetesTargets checks a coordinated rollout (spec.targetRefs): each
// Deployment as spec.targetRef and spec.kubernetes are checked for one,
// then that no two entries name, or make pipit keep, the same object.
func (v *validator) kubernetesTargets(r *v1alpha1.Rollout) {
	s := &r.Spec
	if len(s.TargetRefs) > MaxTargetRefs {
		v.add("spec.targetRefs", "lists %d Deployments; at most %d roll out together", len(s.TargetRefs), MaxTargetRefs)
	}
	if s.Kubernetes != nil {
		v.add("spec.kubernetes", "goes with targetRef; with targetRefs each entry holds its own settings (stableWorkload, service, router, traffic)")
	}
	if s.Strategy.BlueGreen != nil {
		v.add("spec.strategy.blueGreen", "is not offered for targetRefs: roll several Deployments out with canary steps")
	}
	for i := range s.TargetRefs {
		ref := &s.TargetRefs[i]
		f := fmt.Sprintf("spec.targetRefs[%d]", i)
		v.workload(f, &ref.TargetRef)
		v.kubernetesSettings(f, &ref.KubernetesSpec)
	}
	v.kubernetesMetricLists(s)
	v.distinctTargetObjects(ResolveKubernetesTargets(r))
}

// distinctTargetObjects refuses two Deployments of a coordinated rollout
// that would share an object: a Deployment (the target or a copy), a
// Service, or a route object, each of which pipit writes for one of them.
func (v *validator) distinctTargetObjects(plans []KubePlan) {
	type object struct{ kind, name string }
	owner := map[object]int{}
	for i, p := range plans {
		objects := []object{
			{"Deployment", p.Target}, {"Deployment", p.StableWorkload}, {"Deployment", p.CanaryWorkload},
			{"Service", p.Service}, {"Service", p.StableService}, {"Service", p.CanaryService},
		}
		switch p.Router {
		case RouterGatewayAPI:
			objects = append(objects, object{"HTTPRoute", p.HTTPRoute})
		case RouterIstio:
			objects = append(objects, object{"VirtualService", p.VirtualService})
			if p.DestinationRule != "" {
				objects = append(objects, object{"DestinationRule", p.DestinationRule})
			}
		}
		seen := map[object]bool{}
		for _, o := range objects {
			if o.name == "" || seen[o] {
				continue // a missing name is reported already; one entry may name an object twice (route = Service)
			}
			seen[o] = true
			if j, dup := owner[o]; dup {
				v.add(fmt.Sprintf("spec.targetRefs[%d]", i), "uses %s %s, which spec.targetRefs[%d] (%s) uses too: each Deployment needs objects of its own; name them in the entry",
					o.kind, clip(o.name), j, clip(plans[j].Target))
				break // the first shared object says it; the others derive from it
			}
			owner[o] = i
		}
	}
}
