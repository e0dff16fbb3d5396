package spec

import (
	"reflect"
	"strings"
	"testing"
)

const kubeBase = `apiVersion: pipit.dev/v1alpha1
kind: Rollout
metadata: {name: web, namespace: shop}
spec:
  targetRef: {name: web}
  strategy:
    steps: [{setWeight: 10}]
`

// TestValidateKubernetes checks that each Kubernetes mistake is refused
// with its field and line, and that nothing else is reported.
func TestValidateKubernetes(t *testing.T) {
	for _, tc := range []struct {
		name, extra, field, reason string
	}{
		{"service and targetRef", "  service: {listen: ':8080', stable: {url: 'http://127.0.0.1:1'}}\n", "spec", "not both"},
		{"kubernetes without targetRef", "", "", ""},
		{"kind", "", "", ""},
		{"usage metric", "  analysis:\n    metrics: [{name: cpu-usage, thresholdRange: {max: 80}}]\n",
			"spec.analysis.metrics[0].provider", "processes pipit runs"},
		{"watched usage metric", "  postPromotion:\n    duration: 1m\n    metrics: [{name: memory-usage, thresholdRange: {max: 80}}]\n",
			"spec.postPromotion.metrics[0].provider", "processes pipit runs"},
		{"bad copy name", "  kubernetes: {stableWorkload: Web_Stable}\n", "spec.kubernetes.stableWorkload", "not a valid object name"},
		{"bad port", "  kubernetes: {service: {port: 70000}}\n", "spec.kubernetes.service.port", "1 to 65535"},
		{"two routers", "  kubernetes: {router: {gatewayAPI: {}, istio: {}}}\n", "spec.kubernetes.router", "not both"},
		{"gateway implementation", "  kubernetes: {router: {gatewayAPI: {implementation: contour}}}\n",
			"spec.kubernetes.router.gatewayAPI.implementation", "must be envoyGateway, istio or empty"},
		{"rules without router", "  kubernetes: {traffic: {rules: [{to: canary, headers: {canary: {exact: 'true'}}}]}}\n",
			"spec.kubernetes.traffic", "need a router"},
		{"user key", "  kubernetes: {router: {istio: {}}, traffic: {userKey: [{header: X-User}]}}\n",
			"spec.kubernetes.traffic.userKey", "pipit's own proxy"},
		{"gateway not", "  kubernetes: {router: {gatewayAPI: {}}, traffic: {rules: [{to: stable, headers: {tier: {exact: gold, not: true}}}]}}\n",
			"spec.kubernetes.traffic.rules[0].headers[tier].not", "cannot negate"},
		{"istio not on a path", "  kubernetes: {router: {istio: {}}, traffic: {rules: [{to: stable, path: {prefix: /admin, not: true}}]}}\n",
			"spec.kubernetes.traffic.rules[0].path.not", "header and cookie conditions only"},
		{"inFile", "  kubernetes: {router: {istio: {}}, traffic: {rules: [{to: canary, headers: {X-User: {inFile: /etc/beta}}}]}}\n",
			"spec.kubernetes.traffic.rules[0].headers[X-User].inFile", "no local files"},
		{"gateway method prefix", "  kubernetes: {router: {gatewayAPI: {}}, traffic: {rules: [{to: canary, method: {prefix: P}}]}}\n",
			"spec.kubernetes.traffic.rules[0].method", "exact or in"},
		{"headers differing in case", "  kubernetes: {router: {istio: {}}, traffic: {rules: [{to: canary, headers: {X-A: {exact: a}, x-a: {exact: b}}}]}}\n",
			"spec.kubernetes.traffic.rules[0].headers[x-a]", "ignore case"},
		{"four cookies", "  kubernetes: {router: {istio: {}}, traffic: {rules: [{to: canary, cookies: {a: {exact: '1'}, b: {exact: '2'}, c: {exact: '3'}, d: {exact: '4'}}}]}}\n",
			"spec.kubernetes.traffic.rules[0].cookies", "at most 3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := kubeBase + tc.extra
			switch tc.name {
			case "kubernetes without targetRef":
				src = strings.Replace(kubeBase, "  targetRef: {name: web}\n", "  service: {listen: ':8080', stable: {url: 'http://127.0.0.1:1'}}\n  kubernetes: {}\n", 1)
				tc.field, tc.reason = "spec.kubernetes", "targetRef"
			case "kind":
				src = strings.Replace(kubeBase, "{name: web}", "{name: web, kind: StatefulSet}", 1)
				tc.field, tc.reason = "spec.targetRef.kind", "only kind"
			}
			_, err := ParseFile("rollout.yaml", []byte(src))
			if err == nil {
				t.Fatalf("accepted:\n%s", src)
			}
			errs, ok := err.(Errors)
			if !ok {
				t.Fatalf("error %T: %v", err, err)
			}
			if len(errs) != 1 || errs[0].Field != tc.field || !strings.Contains(errs[0].Reason, tc.reason) || errs[0].Line == 0 {
				t.Errorf("got %v; want one error on %s containing %q, with its line", err, tc.field, tc.reason)
			}
		})
	}
}

// TestValidateKubernetesBuiltinMetrics checks that the built-in metrics
// the controller reads from Prometheus need no provider in Kubernetes.
func TestValidateKubernetesBuiltinMetrics(t *testing.T) {
	src := kubeBase + "  analysis:\n    metrics:\n    - {name: request-success-rate, thresholdRange: {min: 99}}\n" +
		"    - {name: latency-p99, thresholdRange: {max: 500}}\n    - {name: error-rate, compare: {}}\n"
	if _, err := ParseFile("rollout.yaml", []byte(src)); err != nil {
		t.Fatalf("refused: %v\n%s", err, src)
	}
}

func TestResolveKubernetesDefaults(t *testing.T) {
	rs, err := ParseFile("rollout.yaml", []byte(kubeBase))
	if err != nil {
		t.Fatal(err)
	}
	if RuntimeOf(&rs[0].Spec) != RuntimeKubernetes {
		t.Fatalf("runtime %s", RuntimeOf(&rs[0].Spec))
	}
	got := ResolveKubernetes(rs[0])
	want := KubePlan{Namespace: "shop", Target: "web", StableWorkload: "web-stable", CanaryWorkload: "web-canary",
		Service: "web", StableService: "web-stable", CanaryService: "web-canary", Port: 80, Router: RouterReplicas}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("defaults:\n got %+v\nwant %+v", got, want)
	}

	rs, err = ParseFile("rollout.yaml", []byte(kubeBase+`  kubernetes:
    service: {name: front, port: 8080}
    router: {istio: {destinationRule: front}}
`))
	if err != nil {
		t.Fatal(err)
	}
	got = ResolveKubernetes(rs[0])
	if got.Service != "front" || got.StableService != "front-stable" || got.Port != 8080 || got.Router != RouterIstio ||
		got.VirtualService != "front" || !reflect.DeepEqual(got.Hosts, []string{"front"}) || got.DestinationRule != "front" {
		t.Errorf("istio plan %+v", got)
	}
}
