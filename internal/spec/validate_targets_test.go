package spec

import (
	"fmt"
	"strings"
	"testing"
)

const targetsBase = `apiVersion: pipit.dev/v1alpha1
kind: Rollout
metadata: {name: shop, namespace: shop}
spec:
  targetRefs:
  - {name: frontend, router: {gatewayAPI: {parentRefs: [{name: edge}]}}}
  - {name: backend}
  strategy:
    steps: [{setWeight: 10}]
`

// targetsMistakes are coordinated rollouts refused with one error each:
// the replacement made in targetsBase, the field and part of the reason.
var targetsMistakes = []struct {
	name, old, new, field, reason string
}{
	{"with targetRef", "  targetRefs:", "  targetRef: {name: web}\n  targetRefs:", "spec.targetRefs", "not two"},
	{"with kubernetes", "  strategy:", "  kubernetes: {}\n  strategy:", "spec.kubernetes", "each entry holds its own"},
	{"name twice", "{name: backend}", "{name: frontend, service: {name: other}, stableWorkload: a, canaryWorkload: b}",
		"spec.targetRefs[1]", "uses Deployment frontend, which spec.targetRefs[0] (frontend) uses too"},
	{"shared Service", "{name: backend}", "{name: backend, service: {name: frontend}, router: {gatewayAPI: {httpRoute: be}}}",
		"spec.targetRefs[1]", "uses Service frontend"},
	{"kind", "{name: backend}", "{name: backend, kind: StatefulSet}", "spec.targetRefs[1].kind", "only kind"},
	{"bad port", "{name: backend}", "{name: backend, service: {port: 0, targetPort: 70000}}", "spec.targetRefs[1].service.targetPort", "1 to 65535"},
	{"rules without router", "{name: backend}", "{name: backend, traffic: {rules: [{to: canary, headers: {c: {exact: 'y'}}}]}}",
		"spec.targetRefs[1].traffic", "set spec.targetRefs[1].router.gatewayAPI"},
	{"blue-green", "    steps: [{setWeight: 10}]", "    blueGreen: {}", "spec.strategy.blueGreen", "not offered for targetRefs"},
	{"usage metric", "    steps: [{setWeight: 10}]", "    steps: [{setWeight: 10}]\n  analysis:\n    metrics: [{name: cpu-usage, thresholdRange: {max: 80}}]",
		"spec.analysis.metrics[0].provider", "processes pipit runs"},
}

// TestValidateTargetRefs checks that each mistake of a coordinated
// rollout is refused with its field, line and reason, and nothing else.
func TestValidateTargetRefs(t *testing.T) {
	rs, err := ParseFile("rollout.yaml", []byte(targetsBase))
	if err != nil {
		t.Fatalf("refused: %v", err)
	}
	if RuntimeOf(&rs[0].Spec) != RuntimeKubernetes {
		t.Errorf("runtime %s", RuntimeOf(&rs[0].Spec))
	}
	for _, tc := range targetsMistakes {
		t.Run(tc.name, func(t *testing.T) {
			src := strings.Replace(targetsBase, tc.old, tc.new, 1)
			_, err := ParseFile("rollout.yaml", []byte(src))
			errs, ok := err.(Errors)
			if !ok {
				t.Fatalf("error %T: %v\n%s", err, err, src)
			}
			if len(errs) != 1 || errs[0].Field != tc.field || !strings.Contains(errs[0].Reason, tc.reason) || errs[0].Line == 0 {
				t.Errorf("got %v; want one error on %s containing %q, with its line", err, tc.field, tc.reason)
			}
		})
	}
}

// TestValidateTargetRefsBound checks the bound on the Deployments of one
// rollout.
func TestValidateTargetRefsBound(t *testing.T) {
	var b strings.Builder
	for i := range MaxTargetRefs + 1 {
		fmt.Fprintf(&b, "  - {name: app%d}\n", i)
	}
	src := strings.Replace(targetsBase, "  - {name: frontend, router: {gatewayAPI: {parentRefs: [{name: edge}]}}}\n  - {name: backend}\n", b.String(), 1)
	_, err := ParseFile("rollout.yaml", []byte(src))
	if err == nil || !strings.Contains(err.Error(), "spec.targetRefs") || !strings.Contains(err.Error(), "at most 20") {
		t.Errorf("21 Deployments: %v", err)
	}
}

// TestResolveKubernetesTargets checks that each entry gets its own
// names and router, in the spec's order.
func TestResolveKubernetesTargets(t *testing.T) {
	rs, err := ParseFile("rollout.yaml", []byte(targetsBase))
	if err != nil {
		t.Fatal(err)
	}
	plans := ResolveKubernetesTargets(rs[0])
	if len(plans) != 2 {
		t.Fatalf("%d plans", len(plans))
	}
	fe, be := plans[0], plans[1]
	if fe.Target != "frontend" || fe.CanaryWorkload != "frontend-canary" || fe.Router != RouterGatewayAPI || fe.HTTPRoute != "frontend" ||
		len(fe.ParentRefs) != 1 || fe.Namespace != "shop" {
		t.Errorf("frontend %+v", fe)
	}
	if be.Target != "backend" || be.StableService != "backend-stable" || be.Router != RouterReplicas {
		t.Errorf("backend %+v", be)
	}
}
