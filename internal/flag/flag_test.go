package flag

import (
	"fmt"
	"net/http"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/proxy/route"
)

func pct(n int) v1alpha1.Percent { return v1alpha1.Percent(n) * v1alpha1.PercentScale }

// checkoutSpec is the write-up's flag, with a rule for beta testers and
// one keeping a region on the current variant.
func checkoutSpec() *v1alpha1.FlagSpec {
	return &v1alpha1.FlagSpec{
		Key:            "new-checkout",
		Variants:       map[string]apiextensionsv1.JSON{"on": {Raw: []byte("true")}, "off": {Raw: []byte("false")}},
		DefaultVariant: "off", RolloutVariant: "on",
		Rules: []v1alpha1.FlagRule{
			{Name: "beta", To: v1alpha1.DestinationCanary, Attributes: map[string]v1alpha1.StringMatch{"plan": {In: []string{"beta"}}}},
			{Name: "eu", To: v1alpha1.DestinationStable, Attributes: map[string]v1alpha1.StringMatch{"region": {Exact: "eu"}, "tier": {Exact: "3"}}},
		},
	}
}

func compileCheckout(t *testing.T) *Flag {
	t.Helper()
	f, err := Compile(checkoutSpec(), route.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// evaluations are answers to contexts in states: the variant and
// reason, or the error code and status.
var evaluations = []struct {
	name    string
	st      State
	ctx     map[string]any
	variant string
	reason  string
	code    string
	status  int
}{
	{"before the rollout", State{Stable: "off"}, map[string]any{}, "off", ReasonDefault, "", 0},
	{"canary not yet live", State{Stable: "off", Canary: "on", Weight: pct(50)}, map[string]any{}, "off", ReasonDefault, "", 0},
	{"at weight 0", State{Stable: "off", Canary: "on", Live: true}, map[string]any{TargetingKey: "u"}, "off", ReasonDefault, "", 0},
	{"all of them", State{Stable: "off", Canary: "on", Weight: pct(100), Live: true}, map[string]any{}, "on", ReasonSplit, "", 0},
	{"after a promotion", State{Stable: "on"}, map[string]any{}, "on", ReasonStatic, "", 0},
	{"rolled back", State{Stable: "off", Canary: "on", Weight: pct(25), Disabled: true}, map[string]any{TargetingKey: "u"}, "off", ReasonDisabled, "", 0},
	{"beta tester at 0", State{Stable: "off", Canary: "on", Live: true}, map[string]any{"plan": "beta"}, "on", ReasonTargetingMatch, "", 0},
	{"region kept", State{Stable: "off", Canary: "on", Weight: pct(100), Live: true}, map[string]any{"region": "eu", "tier": 3.0}, "off", ReasonTargetingMatch, "", 0},
	{"region, other tier", State{Stable: "off", Canary: "on", Weight: pct(100), Live: true}, map[string]any{"region": "eu", "tier": 2.0}, "on", ReasonSplit, "", 0},
	{"no targeting key", State{Stable: "off", Canary: "on", Weight: pct(5), Live: true}, map[string]any{"plan": "gold"}, "", "", ErrTargetingKeyMissing, http.StatusBadRequest},
	{"number as key", State{Stable: "off", Canary: "on", Weight: pct(5), Live: true}, map[string]any{TargetingKey: 12.0}, "", "", ErrInvalidContext, http.StatusBadRequest},
	{"object attribute is absent", State{Stable: "off", Canary: "on", Live: true}, map[string]any{"plan": map[string]any{"x": "beta"}}, "off", ReasonDefault, "", 0},
}

// TestEvaluate checks the variant, reason and failures of evaluations.
func TestEvaluate(t *testing.T) {
	f := compileCheckout(t)
	for _, tc := range evaluations {
		r, fail := f.Evaluate(tc.st, tc.ctx)
		switch {
		case tc.code != "":
			if fail == nil || fail.ErrorCode != tc.code || fail.Status != tc.status || fail.Key != "new-checkout" {
				t.Errorf("%s: got %+v %+v, want %s with %d", tc.name, r, fail, tc.code, tc.status)
			}
		case fail != nil:
			t.Errorf("%s: %v", tc.name, fail)
		case r.Variant != tc.variant || r.Reason != tc.reason || string(r.Value) != map[string]string{"on": "true", "off": "false"}[tc.variant]:
			t.Errorf("%s: got %s %s %s, want %s %s", tc.name, r.Variant, r.Value, r.Reason, tc.variant, tc.reason)
		}
	}
}

// TestSplitIsStickyAndGrows checks the write-up's 5 → 25 → 50 → 100 on
// 20,000 users: each share is the weight's, nobody who had the new
// variant loses it as the weight grows, and every answer is the proxy's
// decision for the same key and salt.
func TestSplitIsStickyAndGrows(t *testing.T) {
	f := compileCheckout(t)
	const users = 20000
	had := make([]bool, users)
	h := route.NewHasher("new-checkout")
	for _, w := range []int{5, 25, 50, 100} {
		st := State{Stable: "off", Canary: "on", Weight: pct(w), Live: true}
		on := 0
		for i := range users {
			key := fmt.Sprintf("user-%d", i)
			r, fail := f.Evaluate(st, map[string]any{TargetingKey: key})
			if fail != nil {
				t.Fatal(fail)
			}
			got := r.Variant == "on"
			if had[i] && !got {
				t.Fatalf("weight %d%%: %s went back to off", w, key)
			}
			if got != h.InCanary(key, pct(w)) {
				t.Fatalf("weight %d%%: %s split unlike the proxy", w, key)
			}
			again, _ := f.Evaluate(st, map[string]any{TargetingKey: key, "plan": "gold"})
			if again.Variant != r.Variant {
				t.Fatalf("weight %d%%: %s got %s then %s", w, key, r.Variant, again.Variant)
			}
			had[i], on = got, on+btoi(got)
		}
		if want := users * w / 100; on < want-users/100 || on > want+users/100 {
			t.Errorf("weight %d%%: %d of %d users on, want about %d", w, on, users, want)
		}
	}
	// A rollback turns it off for everyone at once.
	for i := range users {
		r, _ := f.Evaluate(State{Stable: "off", Canary: "on", Weight: pct(100), Disabled: true}, map[string]any{TargetingKey: fmt.Sprint("user-", i)})
		if r.Variant != "off" || r.Reason != ReasonDisabled {
			t.Fatalf("after the rollback user %d got %s %s", i, r.Variant, r.Reason)
		}
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestSaltSeparatesFlags checks that two flags at the same weight give
// the new variant to different users.
func TestSaltSeparatesFlags(t *testing.T) {
	a := compileCheckout(t)
	other := checkoutSpec()
	other.Key = "new-search"
	b, err := Compile(other, route.Options{})
	if err != nil {
		t.Fatal(err)
	}
	st := State{Stable: "off", Canary: "on", Weight: pct(50), Live: true}
	same := 0
	for i := range 2000 {
		ctx := map[string]any{TargetingKey: fmt.Sprint("u", i)}
		ra, _ := a.Evaluate(st, ctx)
		rb, _ := b.Evaluate(st, ctx)
		same += btoi(ra.Variant == rb.Variant)
	}
	if same < 850 || same > 1150 {
		t.Errorf("%d of 2000 users got the same variant of both flags; want about half", same)
	}
}
