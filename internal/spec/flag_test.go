package spec

import (
	"strings"
	"testing"

	"github.com/pipit-dev/pipit/api/v1alpha1"
)

const flagBase = `apiVersion: pipit.dev/v1alpha1
kind: Rollout
metadata: {name: checkout-flag}
spec:
  flag:
    key: new-checkout
    variants: {on: true, off: false}
    defaultVariant: off
    rolloutVariant: on
  strategy:
    steps: [{setWeight: 5}, {setWeight: 25}, {setWeight: 50}]
`

// flagMistakes are flag rollouts each refused for one reason: a
// replacement of flagBase's text, the field and a part of the reason.
var flagMistakes = []struct {
	name, old, new, field, reason string
}{
	{"no key", "key: new-checkout", "key: ''", "spec.flag.key", "is required"},
	{"bad key", "key: new-checkout", "key: 'new/checkout'", "spec.flag.key", "not a flag key"},
	{"no variants", "variants: {on: true, off: false}", "variants: {}", "spec.flag.variants", "is required"},
	{"mixed types", "variants: {on: true, off: false}", "variants: {on: 'yes', off: false}", "spec.flag.variants[on]", "one type"},
	{"list value", "variants: {on: true, off: false}", "variants: {on: [1], off: false}", "spec.flag.variants[on]", "boolean, a string"},
	{"bad variant name", "variants: {on: true, off: false}", "variants: {'o n': true, on: true, off: false}", "spec.flag.variants[o n]", "not a variant name"},
	{"unknown default", "defaultVariant: off", "defaultVariant: of", "spec.flag.defaultVariant", "not one of the variants (off, on)"},
	{"no default", "    defaultVariant: off\n", "", "spec.flag.defaultVariant", "is required"},
	{"same variants", "rolloutVariant: on", "rolloutVariant: off", "spec.flag.rolloutVariant", "defaultVariant too"},
	{"flag and service", "  strategy:", "  service: {listen: ':8080', stable: {url: 'http://127.0.0.1:1'}}\n  strategy:", "spec.flag", "one of the three"},
	{"flag and targetRef", "  strategy:", "  targetRef: {name: web}\n  strategy:", "spec.flag", "one of the three"},
	{"kubernetes", "  strategy:", "  kubernetes: {}\n  strategy:", "spec.kubernetes", "not flags"},
	{"blue-green", "    steps: [{setWeight: 5}, {setWeight: 25}, {setWeight: 50}]", "    blueGreen: {}", "spec.strategy.blueGreen", "no preview"},
	{"usage", "  strategy:", "  analysis: {metrics: [{name: cpu-usage, thresholdRange: {max: 50}}]}\n  strategy:", "spec.analysis.metrics[0].name", "a flag has none"},
	{"rule without to", "    rolloutVariant: on\n", "    rolloutVariant: on\n    rules: [{attributes: {plan: {exact: beta}}}]\n", "spec.flag.rules[0].to", "is required"},
	{"rule without attributes", "    rolloutVariant: on\n", "    rolloutVariant: on\n    rules: [{to: canary}]\n", "spec.flag.rules[0].attributes", "is required"},
	{"rule inFile", "    rolloutVariant: on\n", "    rolloutVariant: on\n    rules: [{to: canary, attributes: {plan: {inFile: /etc/beta}}}]\n", "spec.flag.rules[0].attributes[plan].inFile", "in"},
	{"goal with a condition", "  strategy:", "  analysis: {goals: [{name: purchase, path: {exact: /buy}}]}\n  strategy:", "spec.analysis.goals[0]", "reached by a conversion event naming it"},
	{"goal counted in Prometheus", "  strategy:", "  analysis: {goals: [{name: purchase, prometheus: {address: 'http://127.0.0.1:9090', visitors: v, conversions: c}}]}\n  strategy:", "spec.analysis.goals[0]", "reached by a conversion event naming it"},
	{"experiment without a goal", "    steps: [{setWeight: 5}, {setWeight: 25}, {setWeight: 50}]", "    experiment: {}", "spec.strategy.experiment", "decides on a conversion goal"},
	{"rule bad regex", "    rolloutVariant: on\n", "    rolloutVariant: on\n    rules: [{to: canary, attributes: {email: {regex: '('}}}]\n", "spec.flag.rules[0].attributes[email].regex", "RE2"},
}

// TestValidateFlag checks that a flag rollout is accepted as written and
// that each mistake is refused alone, naming its field and line.
func TestValidateFlag(t *testing.T) {
	rs, err := ParseFile("flag.yaml", []byte(flagBase))
	if err != nil {
		t.Fatal(err)
	}
	f := rs[0].Spec.Flag
	if f == nil || string(f.Variants["on"].Raw) != "true" || f.RolloutVariant != "on" || RuntimeOf(&rs[0].Spec) != RuntimeStandalone {
		t.Fatalf("parsed %+v", f)
	}
	if _, err := Resolve(&rs[0].Spec); err != nil {
		t.Fatal(err)
	}
	if err := CheckCanary(&rs[0].Spec, v1alpha1.VersionRef{Version: "on"}); err != nil {
		t.Errorf("deploying a variant: %v", err)
	}
	if err := CheckCanary(&rs[0].Spec, v1alpha1.VersionRef{Version: "maybe"}); err == nil || !strings.Contains(err.Error(), "its variants are off, on") {
		t.Errorf("deploying no variant: %v", err)
	}
	if err := CheckCanary(&rs[0].Spec, v1alpha1.VersionRef{Version: "on", URL: "http://x"}); err == nil {
		t.Error("deployed a URL as a variant")
	}
	for _, tc := range flagMistakes {
		t.Run(tc.name, func(t *testing.T) {
			src := strings.Replace(flagBase, tc.old, tc.new, 1)
			if src == flagBase {
				t.Fatalf("%q is not in the base", tc.old)
			}
			_, err := ParseFile("flag.yaml", []byte(src))
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

// TestFlagVariantValues checks the kinds of values a variant may hold,
// objects included, as JSON.
func TestFlagVariantValues(t *testing.T) {
	src := strings.Replace(flagBase, "variants: {on: true, off: false}",
		"variants: {on: {color: blue, size: 3}, off: {color: grey, size: 1}}", 1)
	rs, err := ParseFile("flag.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if got := string(rs[0].Spec.Flag.Variants["on"].Raw); got != `{"color":"blue","size":3}` {
		t.Errorf("object variant %s", got)
	}
	for raw, want := range map[string]string{`true`: "boolean", `"a"`: "string", `2.5`: "number", `{}`: "object", `[1]`: "", `null`: "", `{`: ""} {
		if got := FlagValueKind([]byte(raw)); got != want {
			t.Errorf("FlagValueKind(%s) = %q, want %q", raw, got, want)
		}
	}
}

// TestFlagExperiment: a flag is A/B tested by its evaluations'
// targetingKey, which needs no user key, on a goal its events name.
func TestFlagExperiment(t *testing.T) {
	src := strings.Replace(flagBase, "    steps: [{setWeight: 5}, {setWeight: 25}, {setWeight: 50}]",
		"    experiment: {split: 20}\n  analysis: {goals: [{name: purchase}]}", 1)
	rs, err := ParseFile("flag.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	p, err := Resolve(&rs[0].Spec)
	if err != nil {
		t.Fatal(err)
	}
	if p.Experiment == nil || p.Experiment.ByRules || p.Steps[0].Weight != 20*v1alpha1.PercentScale {
		t.Errorf("plan %+v, want the experiment's split of 20%% set by the flag's weight", p)
	}
}
