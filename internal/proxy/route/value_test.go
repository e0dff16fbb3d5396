package route

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/pipit-dev/pipit/api/v1alpha1"
)

// TestHasherSplitsAsTheProxy checks that the exported hasher puts a key
// on the canary exactly when the proxy routes a request of that user
// key there, at several weights.
func TestHasherSplitsAsTheProxy(t *testing.T) {
	spec := &v1alpha1.TrafficSpec{UserKey: []v1alpha1.UserKeySource{{Header: "X-User"}}, Salt: "s"}
	pol, err := Compile(spec, Options{Name: "web"})
	if err != nil {
		t.Fatal(err)
	}
	h := NewHasher("s")
	for _, w := range []v1alpha1.Percent{0, 5 * v1alpha1.PercentScale, 50 * v1alpha1.PercentScale, v1alpha1.FullWeight} {
		table, err := NewTable(w, pol, CookieKeys{})
		if err != nil {
			t.Fatal(err)
		}
		table = table.WithUpstreams("v1", "v2", true)
		canary := 0
		for i := range 2000 {
			key := fmt.Sprintf("user-%d", i)
			r, _ := http.NewRequest(http.MethodGet, "http://x/", nil)
			r.Header.Set("X-User", key)
			if got := h.InCanary(key, w); got != table.Route(r).Canary {
				t.Fatalf("weight %s, key %s: hasher %v, proxy %v", w, key, got, !got)
			} else if got {
				canary++
			}
		}
		if lo, hi := int(w)*2000/int(v1alpha1.FullWeight)-60, int(w)*2000/int(v1alpha1.FullWeight)+60; canary < lo || canary > hi {
			t.Errorf("weight %s: %d of 2000 on the canary", w, canary)
		}
	}
}

// TestValueMatch checks the operators and not on plain values.
func TestValueMatch(t *testing.T) {
	for _, tc := range []struct {
		sm      v1alpha1.StringMatch
		value   string
		present bool
		want    bool
	}{
		{v1alpha1.StringMatch{In: []string{"beta", "internal"}}, "beta", true, true},
		{v1alpha1.StringMatch{In: []string{"beta"}}, "gold", true, false},
		{v1alpha1.StringMatch{Suffix: "@example.com"}, "a@example.com", true, true},
		{v1alpha1.StringMatch{Regex: "u-[0-9]+"}, "u-12x", true, false},
		{v1alpha1.StringMatch{}, "", true, true},
		{v1alpha1.StringMatch{}, "", false, false},
		{v1alpha1.StringMatch{Exact: "gold", Not: true}, "", false, true},
		{v1alpha1.StringMatch{Exact: "gold", Not: true}, "gold", true, false},
	} {
		vm, err := CompileValueMatch(tc.sm, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if got := vm.Holds(tc.value, tc.present); got != tc.want {
			t.Errorf("%+v on %q (present %v) = %v, want %v", tc.sm, tc.value, tc.present, got, tc.want)
		}
	}
}
