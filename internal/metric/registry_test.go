package metric

import (
	"strings"
	"testing"

	"github.com/pipit-dev/pipit/api/v1alpha1"
)

func TestNewProvider(t *testing.T) {
	prom := &v1alpha1.PrometheusProvider{Address: "http://127.0.0.1:9090", Query: "up"}
	web := &v1alpha1.WebProvider{URL: "http://127.0.0.1:8080/m", JSONPath: "$.v"}
	cases := []struct {
		name     string
		provider *v1alpha1.MetricProvider
		// want is the provider's type, or else the error's text.
		want, err string
	}{
		{name: "prometheus", provider: &v1alpha1.MetricProvider{Prometheus: prom}, want: "*metric.Prometheus"},
		{name: "web", provider: &v1alpha1.MetricProvider{Web: web}, want: "*metric.Web"},
		{name: "builtin", provider: nil, err: `metric "m": no provider`},
		{name: "empty", provider: &v1alpha1.MetricProvider{}, err: "names none of the known providers"},
		{name: "both", provider: &v1alpha1.MetricProvider{Prometheus: prom, Web: web}, err: "both prometheus and web"},
		{name: "bad prometheus", provider: &v1alpha1.MetricProvider{Prometheus: &v1alpha1.PrometheusProvider{Address: "127.0.0.1:9090", Query: "up"}}, err: `metric "m": prometheus: address`},
		{name: "prometheus without query", provider: &v1alpha1.MetricProvider{Prometheus: &v1alpha1.PrometheusProvider{Address: "http://127.0.0.1:9090"}}, err: "query is empty"},
		{name: "bad web", provider: &v1alpha1.MetricProvider{Web: &v1alpha1.WebProvider{URL: "http://127.0.0.1/"}}, err: `metric "m": web: jsonPath`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := NewProvider(v1alpha1.MetricSpec{Name: "m", Provider: c.provider}, Env{})
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("got %T, %v; want an error containing %q", p, err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := typeName(p); got != c.want {
				t.Fatalf("got %s, want %s", got, c.want)
			}
		})
	}
}

func typeName(v any) string {
	switch v.(type) {
	case *Prometheus:
		return "*metric.Prometheus"
	case *Web:
		return "*metric.Web"
	}
	return "other"
}
