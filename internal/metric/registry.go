package metric

import (
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pipit-dev/pipit/api/v1alpha1"
)

// NewProvider returns the provider a metric names. A metric without a
// provider is a builtin one, measured by Builtin, so it is an error here;
// so is a provider section that names no provider or several. The
// providers read the time and log through env.
func NewProvider(m v1alpha1.MetricSpec, env Env) (Provider, error) {
	p := m.Provider
	if p == nil {
		return nil, fmt.Errorf("metric %q: no provider; builtin metrics are measured by the built-in proxy", m.Name)
	}
	var (
		prov Provider
		err  error
	)
	switch {
	case p.Prometheus != nil && p.Web != nil:
		return nil, fmt.Errorf("metric %q: provider sets both prometheus and web; set one", m.Name)
	case p.Prometheus != nil:
		prov, err = NewPrometheus(*p.Prometheus, env)
	case p.Web != nil:
		prov, err = NewWeb(*p.Web)
	default:
		return nil, fmt.Errorf("metric %q: provider names none of the known providers (prometheus, web)", m.Name)
	}
	if err != nil {
		return nil, fmt.Errorf("metric %q: %w", m.Name, err)
	}
	return prov, nil
}

// durationOr returns d, or def when d is unset or not positive.
func durationOr(d *metav1.Duration, def time.Duration) time.Duration {
	if d == nil || d.Duration <= 0 {
		return def
	}
	return d.Duration
}
