package spec

import (
	"strings"
	"testing"

	"github.com/pipit-dev/pipit/api/v1alpha1"
)

// metricUnitCases are metrics and the unit people read after their values.
var metricUnitCases = []struct {
	m    v1alpha1.MetricSpec
	want string
}{
	{v1alpha1.MetricSpec{Name: "request-success-rate"}, "%"},
	{v1alpha1.MetricSpec{Name: "error-rate"}, "%"},
	{v1alpha1.MetricSpec{Name: "latency-p99"}, "ms"},
	{v1alpha1.MetricSpec{Name: "request-duration"}, "ms"},
	{v1alpha1.MetricSpec{Name: "request-count"}, "requests"},
	{v1alpha1.MetricSpec{Name: MetricCPUUsage}, "%"},
	{v1alpha1.MetricSpec{Name: MetricMemoryUsage}, "%"},
	// A query of the user's says nothing, even under a built-in's name.
	{v1alpha1.MetricSpec{Name: "latency-p99", Provider: &v1alpha1.MetricProvider{}}, ""},
	{v1alpha1.MetricSpec{Name: "checkout-rate", Provider: &v1alpha1.MetricProvider{}, Unit: "req/s"}, "req/s"},
	{v1alpha1.MetricSpec{Name: "unknown"}, ""},
}

func TestMetricUnit(t *testing.T) {
	for _, tc := range metricUnitCases {
		if got := MetricUnit(tc.m); got != tc.want {
			t.Errorf("MetricUnit(%s, provider %v, unit %q) = %q, want %q", tc.m.Name, tc.m.Provider != nil, tc.m.Unit, got, tc.want)
		}
	}
}

func TestWithUnit(t *testing.T) {
	for _, tc := range []struct{ number, unit, want string }{
		{"7.49", "ms", "7.49ms"},
		{"99.5", "%", "99.5%"},
		{"120", "requests", "120 requests"},
		{"3.2", "req/s", "3.2 req/s"},
		{"0.5", "s", "0.5s"},
		{"42", "", "42"},
	} {
		if got := WithUnit(tc.number, tc.unit); got != tc.want {
			t.Errorf("WithUnit(%q, %q) = %q, want %q", tc.number, tc.unit, got, tc.want)
		}
	}
}

// TestUnitValidation: a unit is for metrics with a provider, short and
// printable; the error names the field and why.
func TestUnitValidation(t *testing.T) {
	provider := &v1alpha1.MetricProvider{Web: &v1alpha1.WebProvider{URL: "http://127.0.0.1:1/x", JSONPath: "{$.v}"}}
	for _, tc := range []struct {
		m    v1alpha1.MetricSpec
		want string // "" when valid
	}{
		{v1alpha1.MetricSpec{Name: "q", Provider: provider, Unit: "req/s"}, ""},
		{v1alpha1.MetricSpec{Name: "latency-p99", Unit: "s"}, "is for metrics with a provider"},
		{v1alpha1.MetricSpec{Name: "q", Provider: provider, Unit: strings.Repeat("x", 17)}, "at most 16 bytes"},
		{v1alpha1.MetricSpec{Name: "q", Provider: provider, Unit: " ms"}, "printable without spaces around it"},
		{v1alpha1.MetricSpec{Name: "q", Provider: provider, Unit: "m\ts"}, "printable"},
	} {
		v := &validator{}
		v.unitField("spec.analysis.metrics[0].unit", &tc.m)
		switch {
		case tc.want == "" && len(v.errs) > 0:
			t.Errorf("unit %q refused: %v", tc.m.Unit, v.errs)
		case tc.want != "" && (len(v.errs) != 1 || v.errs[0].Field != "spec.analysis.metrics[0].unit" ||
			!strings.Contains(v.errs[0].Reason, tc.want)):
			t.Errorf("unit %q: %v, want one error on the unit saying %q", tc.m.Unit, v.errs, tc.want)
		}
	}
}
