package kube

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/spec"
	"github.com/pipit-dev/pipit/internal/testenv/kubecluster"
	"github.com/pipit-dev/pipit/internal/testenv/kubefixture"
)

// exampleRollout reads examples/canary.yaml, the rollout the CRD must take
// as it is, named name.
func exampleRollout(t *testing.T, name string) *unstructured.Unstructured {
	t.Helper()
	objs, err := readObjects(kubefixture.RepoPath(t, "examples/canary.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 1 {
		t.Fatalf("examples/canary.yaml holds %d objects, want 1", len(objs))
	}
	objs[0].SetName(name)
	return objs[0]
}

// typed decodes a Rollout through its JSON form, as the controller will.
func typed(t *testing.T, obj *unstructured.Unstructured) *v1alpha1.Rollout {
	t.Helper()
	raw, err := json.Marshal(obj.Object)
	if err != nil {
		t.Fatal(err)
	}
	var r v1alpha1.Rollout
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatalf("decode Rollout %s: %v", obj.GetName(), err)
	}
	return &r
}

// TestRolloutCRDManifestHoldsOnlyTheCRD: the file the tests install, and
// the install manifests list, holds pipit's CustomResourceDefinition and
// nothing else, which kubecluster's installer would pass over.
func TestRolloutCRDManifestHoldsOnlyTheCRD(t *testing.T) {
	objs, err := readObjects(kubefixture.RepoPath(t, kubefixture.CRDPath))
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 1 || objs[0].GetKind() != "CustomResourceDefinition" || objs[0].GetName() != "rollouts.pipit.dev" {
		t.Fatalf("%s holds %d objects, want only the CustomResourceDefinition rollouts.pipit.dev", kubefixture.CRDPath, len(objs))
	}
}

func TestRolloutCRDServesTheExample(t *testing.T) {
	c := kubefixture.Cluster(t)
	ns := c.Namespace(t)
	want := exampleRollout(t, "checkout")
	rollouts := c.Dynamic().Resource(rolloutResource).Namespace(ns)

	if _, err := rollouts.Create(kubefixture.CallContext(t), want.DeepCopy(), metav1.CreateOptions{}); err != nil {
		t.Fatalf("create the example Rollout: %v", err)
	}
	got, err := rollouts.Get(kubefixture.CallContext(t), "checkout", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Everything the user wrote survives: no field is pruned by a schema
	// that lacks it, and weights stay exact decimal numbers.
	gotSpec, wantSpec := typed(t, got).Spec, typed(t, want).Spec
	if !reflect.DeepEqual(gotSpec, wantSpec) {
		t.Errorf("spec read back differs:\n got %+v\nwant %+v", gotSpec, wantSpec)
	}
	if w := gotSpec.Strategy.Steps[0].SetWeight; w == nil || *w != v1alpha1.PercentOf(5) {
		t.Errorf("first step's weight read back as %v, want 5%%", w)
	}
}

// TestRolloutCRDServesPresets: a preset, a bare name or a mapping (which
// the schema cannot type, so it keeps it as written), comes back as it was
// written, and expands as it does from a file.
func TestRolloutCRDServesPresets(t *testing.T) {
	c := kubefixture.Cluster(t)
	rollouts := c.Dynamic().Resource(rolloutResource).Namespace(c.Namespace(t))
	for i, preset := range []any{
		"CodeDeployDefault.ECSLinear10PercentEvery3Minutes",
		map[string]any{"canary": map[string]any{"percent": 2.5, "interval": "90s"}},
	} {
		obj := exampleRollout(t, fmt.Sprintf("preset-%d", i))
		unstructured.RemoveNestedField(obj.Object, "spec", "strategy", "steps")
		if err := unstructured.SetNestedField(obj.Object, preset, "spec", "strategy", "preset"); err != nil {
			t.Fatal(err)
		}
		if _, err := rollouts.Create(kubefixture.CallContext(t), obj.DeepCopy(), metav1.CreateOptions{}); err != nil {
			t.Fatalf("create a Rollout with preset %v: %v", preset, err)
		}
		got, err := rollouts.Get(kubefixture.CallContext(t), obj.GetName(), metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		r := typed(t, got)
		if want := typed(t, obj).Spec.Strategy; !reflect.DeepEqual(r.Spec.Strategy, want) {
			t.Errorf("strategy read back as %+v, want %+v", r.Spec.Strategy, want)
		}
		if errs := spec.Validate(r); len(errs) > 0 {
			t.Errorf("preset %v: %v", preset, errs)
		}
		if p, err := spec.Resolve(&r.Spec); err != nil || len(p.Steps) == 0 || p.Steps[0].Kind != spec.StepSetWeight {
			t.Errorf("preset %v resolved to %+v, %v", preset, p.Steps, err)
		}
	}
}

// invalidRollouts are specs pipit's validator refuses, each with the
// field the API server must name when it refuses the same spec at
// admission (the CRD's schema and CEL rules).
var invalidRollouts = []struct {
	name string
	// path and value are set in the example to make it invalid.
	path  []string
	value any
	// field is the field the API server must name, and reason a part
	// of its explanation.
	field, reason string
}{{
	name: "unknown decision", path: []string{"spec", "decision"}, value: "sometimes",
	field: "spec.decision", reason: `supported values: "automatic", "manual", "hybrid"`,
}, {
	name: "weight above 100", path: []string{"spec", "strategy", "steps"},
	value: []any{map[string]any{"setWeight": int64(150)}},
	field: "spec.strategy.steps[0].setWeight", reason: "less than or equal to 100",
}, {
	name: "step of two kinds", path: []string{"spec", "strategy", "steps"},
	value: []any{
		map[string]any{"setWeight": int64(5)},
		map[string]any{"setWeight": int64(10), "pause": map[string]any{"duration": "1m"}},
	},
	field: "spec.strategy.steps[1]", reason: "exactly one of setWeight, pause, analysis and approval",
}, {
	name: "empty step", path: []string{"spec", "strategy", "steps"},
	value: []any{map[string]any{}},
	field: "spec.strategy.steps[0]", reason: "exactly one of setWeight, pause, analysis and approval",
}, {
	name: "upstream with url and process", path: []string{"spec", "service", "canary"},
	value: map[string]any{
		"url": "http://127.0.0.1:9002", "version": "v2",
		"process": map[string]any{"command": "./app"},
	},
	field: "spec.service.canary", reason: "set one of url, urls and process",
}, {
	name: "upstream with neither", path: []string{"spec", "service", "stable"},
	value: map[string]any{"version": "v1"},
	field: "spec.service.stable", reason: "set one of url, urls and process",
}, {
	name: "upstream with a machine listed twice", path: []string{"spec", "service", "stable"},
	value: map[string]any{"urls": []any{"http://10.0.0.7:8080", "http://10.0.0.7:8080"}},
	field: "spec.service.stable.urls", reason: "each URL may be listed once",
}, {
	name: "steps and shorthand", path: []string{"spec", "strategy", "stepWeight"}, value: int64(10),
	field: "spec.strategy", reason: "use steps or the shorthand",
}, {
	name: "threshold min above max", path: []string{"spec", "analysis", "metrics"},
	value: []any{map[string]any{
		"name": "error-rate", "thresholdRange": map[string]any{"min": 5.5, "max": 1.0},
	}},
	field: "spec.analysis.metrics[0].thresholdRange", reason: "min is above max",
}, {
	name: "unknown hook type", path: []string{"spec", "webhooks"},
	value: []any{map[string]any{"name": "gate", "type": "sometime", "url": "http://127.0.0.1:1/"}},
	field: "spec.webhooks[0].type", reason: "supported values",
}, {
	name: "setWeight going down", path: []string{"spec", "strategy", "steps"},
	value: []any{map[string]any{"setWeight": int64(20)}, map[string]any{"setWeight": int64(10)}},
	field: "spec.strategy", reason: "weights must not go down",
}, {
	name: "maxWeight alone", path: []string{"spec", "strategy"},
	value: map[string]any{"interval": "1m", "maxWeight": int64(50)},
	field: "spec.strategy", reason: "maxWeight needs stepWeight",
}, {
	name: "stepWeight above maxWeight", path: []string{"spec", "strategy"},
	value: map[string]any{"interval": "1m", "stepWeight": int64(60), "maxWeight": int64(50)},
	field: "spec.strategy", reason: "stepWeight is above maxWeight",
}, {
	name: "stepWeight 0", path: []string{"spec", "strategy"},
	value: map[string]any{"interval": "1m", "stepWeight": int64(0)},
	field: "spec.strategy", reason: "stepWeight must be more than 0",
}, {
	name: "stepWeights going down", path: []string{"spec", "strategy"},
	value: map[string]any{"interval": "1m", "stepWeights": []any{int64(20), int64(10)}},
	field: "spec.strategy.stepWeights", reason: "stepWeights must go up",
}, {
	name: "stepWeights with 0", path: []string{"spec", "strategy"},
	value: map[string]any{"interval": "1m", "stepWeights": []any{int64(0), int64(10)}},
	field: "spec.strategy.stepWeights", reason: "must be more than 0",
}, {
	name: "pause of 0s", path: []string{"spec", "strategy", "steps"},
	value: []any{map[string]any{"setWeight": int64(5)}, map[string]any{"pause": map[string]any{"duration": "0s"}}},
	field: "spec.strategy.steps[1].pause.duration", reason: "pause.duration must be positive",
}, {
	name: "experiment and steps", path: []string{"spec", "strategy", "experiment"}, value: map[string]any{},
	field: "spec.strategy", reason: "experiment cannot be mixed with steps",
}, {
	name: "experiment with an unknown rule", path: []string{"spec", "strategy"},
	value: map[string]any{"experiment": map[string]any{"promoteIf": "faster"}},
	field: "spec.strategy.experiment.promoteIf", reason: `supported values: "better", "notWorse"`,
}, {
	name: "negative progressDeadline", path: []string{"spec", "progressDeadline"}, value: "-1m",
	field: "spec.progressDeadline", reason: "progressDeadline must be positive",
}, {
	name: "negative undoWindow", path: []string{"spec", "undoWindow"}, value: "-1m",
	field: "spec.undoWindow", reason: "undoWindow must not be negative",
}, {
	name: "targetRefs beside service", path: []string{"spec", "targetRefs"}, value: []any{map[string]any{"name": "web"}},
	field: "spec", reason: "set one of service (standalone), targetRef (Kubernetes), targetRefs",
}, {
	name: "targetRefs naming a Deployment twice", path: []string{"spec"},
	value: map[string]any{
		"targetRefs": []any{map[string]any{"name": "web"}, map[string]any{"name": "web"}},
		"strategy":   map[string]any{"steps": []any{map[string]any{"setWeight": int64(10)}}},
	},
	field: "spec.targetRefs", reason: "each Deployment may be named once",
}, {
	name: "provider and templateRef", path: []string{"spec", "analysis", "metrics"},
	value: []any{map[string]any{
		"name": "errors", "templateRef": map[string]any{"name": "error-ratio"},
		"provider": map[string]any{"prometheus": map[string]any{"address": "http://127.0.0.1:9090", "query": "up"}},
	}},
	field: "spec.analysis.metrics[0]", reason: "set provider or templateRef, not both",
}, {
	name: "templateRef of another project's kind", path: []string{"spec", "analysis", "metrics"},
	value: []any{map[string]any{"name": "errors", "templateRef": map[string]any{"name": "t", "kind": "AnalysisTemplate"}}},
	field: "spec.analysis.metrics[0].templateRef.kind", reason: "supported values",
}, {
	name: "goal counted by requests and by Prometheus", path: []string{"spec", "analysis", "goals"},
	value: []any{map[string]any{
		"name": "checkout", "path": map[string]any{"exact": "/checkout"},
		"prometheus": map[string]any{"visitors": "v", "conversions": "c"},
	}},
	field: "spec.analysis.goals[0]", reason: "a goal is counted by prometheus or by request conditions",
}}

// TestRolloutCRDRefusesInvalidRollouts: what pipit's validator refuses and
// the CRD can express is refused when it is applied, not found Stalled
// later.
func TestRolloutCRDRefusesInvalidRollouts(t *testing.T) {
	c := kubefixture.Cluster(t)
	ns := c.Namespace(t)
	rollouts := c.Dynamic().Resource(rolloutResource).Namespace(ns)

	for i, tc := range invalidRollouts {
		t.Run(tc.name, func(t *testing.T) {
			obj := exampleRollout(t, "invalid-"+string(rune('a'+i)))
			if err := unstructured.SetNestedField(obj.Object, tc.value, tc.path...); err != nil {
				t.Fatal(err)
			}
			if errs := spec.Validate(typed(t, obj)); len(errs) == 0 {
				t.Errorf("pipit's validator takes the spec: the case tests nothing it refuses")
			}
			_, err := rollouts.Create(kubefixture.CallContext(t), obj, metav1.CreateOptions{})
			if !apierrors.IsInvalid(err) {
				t.Fatalf("create: got %v, want the API server to refuse the Rollout as invalid", err)
			}
			if !namesField(err, tc.field, tc.reason) {
				t.Errorf("the refusal does not name %s with %q:\n%v", tc.field, tc.reason, err)
			}
			if _, err := rollouts.Get(kubefixture.CallContext(t), obj.GetName(), metav1.GetOptions{}); !apierrors.IsNotFound(err) {
				t.Errorf("the refused Rollout exists anyway: get says %v", err)
			}
		})
	}
}

// namesField reports whether an Invalid error has a cause on exactly that
// field whose message contains reason.
func namesField(err error, field, reason string) bool {
	status, ok := err.(apierrors.APIStatus)
	if !ok || status.Status().Details == nil {
		return false
	}
	for _, cause := range status.Status().Details.Causes {
		if cause.Field == field && strings.Contains(cause.Message, reason) {
			return true
		}
	}
	return false
}

func TestRolloutStatusSubresource(t *testing.T) {
	c := kubefixture.Cluster(t)
	ns := c.Namespace(t)
	rollouts := c.Dynamic().Resource(rolloutResource).Namespace(ns)
	created, err := rollouts.Create(kubefixture.CallContext(t), exampleRollout(t, "checkout"), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}

	patch := `{"status": {
		"observedGeneration": 1, "phase": "Progressing", "message": "canary v1.5.0 at 25%",
		"currentStep": 3, "stepLabel": "4/9", "canaryWeight": 25,
		"conditions": [{"type": "Progressing", "status": "True", "reason": "StepRunning",
			"message": "step 3 of 9", "lastTransitionTime": "2026-01-02T03:04:05Z"}]}}`
	patched, err := rollouts.Patch(kubefixture.CallContext(t), "checkout", types.MergePatchType, []byte(patch), metav1.PatchOptions{}, "status")
	if err != nil {
		t.Fatalf("patch status: %v", err)
	}
	st := typed(t, patched).Status
	if st.Phase != v1alpha1.PhaseProgressing || st.CurrentStep != 3 || st.CanaryWeight != v1alpha1.PercentOf(25) ||
		len(st.Conditions) != 1 || st.Conditions[0].Reason != "StepRunning" {
		t.Errorf("status after the patch = %+v", st)
	}
	if patched.GetGeneration() != created.GetGeneration() {
		t.Errorf("a status patch moved the generation from %d to %d", created.GetGeneration(), patched.GetGeneration())
	}

	// The main resource ignores status and the status subresource ignores
	// spec, so the controller and the user never overwrite each other.
	edit := `{"spec": {"decision": "manual"}, "status": {"phase": "Failed"}}`
	edited, err := rollouts.Patch(kubefixture.CallContext(t), "checkout", types.MergePatchType, []byte(edit), metav1.PatchOptions{})
	if err != nil {
		t.Fatalf("patch spec: %v", err)
	}
	if r := typed(t, edited); r.Spec.Decision != v1alpha1.DecisionManual || r.Status.Phase != v1alpha1.PhaseProgressing {
		t.Errorf("after a spec patch with a status: decision %q, phase %q; want manual, Progressing", r.Spec.Decision, r.Status.Phase)
	}
	if edited.GetGeneration() == created.GetGeneration() {
		t.Errorf("a spec change left the generation at %d", edited.GetGeneration())
	}

	// The status is validated too.
	_, err = rollouts.Patch(kubefixture.CallContext(t), "checkout", types.MergePatchType, []byte(`{"status": {"canaryWeight": 150}}`), metav1.PatchOptions{}, "status")
	if !apierrors.IsInvalid(err) || !namesField(err, "status.canaryWeight", "less than or equal to 100") {
		t.Errorf("a status weight of 150: got %v, want it refused naming status.canaryWeight", err)
	}

	checkPrinterColumns(t, c, ns, "checkout", map[string]any{
		// People read the step counted from 1, not currentStep's index.
		"Name": "checkout", "Phase": "Progressing", "Weight": float64(25), "Step": "4/9",
	})
}

// checkPrinterColumns reads a Rollout as the table `kubectl get rollouts`
// prints and compares the named cells.
func checkPrinterColumns(t *testing.T, c *kubecluster.Cluster, ns, name string, want map[string]any) {
	t.Helper()
	raw, err := c.Clientset().CoreV1().RESTClient().Get().
		AbsPath("/apis", v1alpha1.Group, v1alpha1.Version, "namespaces", ns, "rollouts", name).
		SetHeader("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io").
		Do(kubefixture.CallContext(t)).Raw()
	if err != nil {
		t.Fatalf("get the Rollout as a table: %v", err)
	}
	var table metav1.Table
	if err := json.Unmarshal(raw, &table); err != nil {
		t.Fatal(err)
	}
	if len(table.Rows) != 1 {
		t.Fatalf("table has %d rows, want 1", len(table.Rows))
	}
	cells := map[string]any{}
	for i, col := range table.ColumnDefinitions {
		if i < len(table.Rows[0].Cells) {
			cells[col.Name] = table.Rows[0].Cells[i]
		}
	}
	for col, w := range want {
		if got, ok := cells[col]; !ok || !reflect.DeepEqual(got, w) {
			t.Errorf("column %s = %#v (present %t), want %#v", col, got, ok, w)
		}
	}
	if _, ok := cells["Age"]; !ok {
		t.Errorf("no Age column in %v", table.ColumnDefinitions)
	}
}

// TestRolloutCRDNamesBesideArgoRollouts: beside Argo Rollouts, whose kind
// is also Rollout (short name ro), pipit's resource is reached without its
// group through its own short name and category.
func TestRolloutCRDNamesBesideArgoRollouts(t *testing.T) {
	c := kubefixture.Cluster(t)
	list, err := c.Clientset().Discovery().ServerResourcesForGroupVersion(v1alpha1.SchemeGroupVersion.String())
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range list.APIResources {
		if r.Name != "rollouts" {
			continue
		}
		if !reflect.DeepEqual(r.ShortNames, []string{"prl"}) || !reflect.DeepEqual(r.Categories, []string{"pipit"}) {
			t.Errorf("rollouts.pipit.dev: short names %v and categories %v, want [prl] and [pipit]", r.ShortNames, r.Categories)
		}
		return
	}
	t.Fatalf("the API server serves no rollouts in %s", v1alpha1.SchemeGroupVersion)
}
