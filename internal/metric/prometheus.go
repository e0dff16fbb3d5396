package metric

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/url"
	"text/template"
	"time"

	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/rollout"
)

// DefaultTimeout bounds one measurement of the Prometheus and web providers
// when the metric sets no timeout.
const DefaultTimeout = 10 * time.Second

// Retries of a Prometheus query: transport errors and 5xx answers are
// retried with doubling pauses, within the measurement's timeout.
const (
	promAttempts     = 4
	promFirstBackoff = 200 * time.Millisecond
)

// rangePoints is about how many points a range query returns: the step is
// the window divided by it, and at least a second.
const rangePoints = 30

// Prometheus measures a metric with a PromQL query over Prometheus' HTTP
// API. An instant query must give one number: a scalar or a vector of one
// sample.
type Prometheus struct {
	api     promv1.API
	query   *template.Template
	timeout time.Duration
	env     Env
}

var _ SampleProvider = (*Prometheus)(nil)

// NewPrometheus checks the provider's settings and parses its query
// template; it reads TLS files but sends nothing. Queries end at env's
// clock's now.
func NewPrometheus(spec v1alpha1.PrometheusProvider, env Env) (*Prometheus, error) {
	if spec.Query == "" {
		return nil, errors.New("prometheus: query is empty")
	}
	tmpl, err := parseTemplate("query", spec.Query)
	if err != nil {
		return nil, fmt.Errorf("prometheus: %w", err)
	}
	p, err := newPrometheusClient(spec, env)
	if err != nil {
		return nil, err
	}
	p.query = tmpl
	return p, nil
}

// newPrometheusClient checks the provider's address, timeout and HTTP
// settings: a Prometheus that runs the queries it is given.
func newPrometheusClient(spec v1alpha1.PrometheusProvider, env Env) (*Prometheus, error) {
	u, err := url.Parse(spec.Address)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errors.New("prometheus: address must be an http or https URL, such as http://127.0.0.1:9090")
	}
	timeout := durationOr(spec.Timeout, DefaultTimeout)
	hc, err := newHTTPClient(httpConfig{Auth: spec.Auth, Headers: spec.Headers, TLS: spec.TLS})
	if err != nil {
		return nil, fmt.Errorf("prometheus: %w", err)
	}
	client, err := api.NewClient(api.Config{Address: spec.Address, Client: hc})
	if err != nil {
		return nil, fmt.Errorf("prometheus: %w", err)
	}
	return &Prometheus{api: promv1.NewAPI(client), timeout: timeout, env: env.withDefaults()}, nil
}

// Measure runs the rendered query at the current time.
func (p *Prometheus) Measure(ctx context.Context, q Query) (float64, error) {
	query, err := render(p.query, q)
	if err != nil {
		return 0, fmt.Errorf("prometheus: %w", err)
	}
	return p.instant(ctx, query)
}

// instant runs a query at the current time, within the timeout, and reads
// its one number.
func (p *Prometheus) instant(ctx context.Context, query string) (float64, error) {
	v, err := p.queryNow(ctx, query)
	if err != nil {
		return 0, err
	}
	return instantValue(v)
}

// queryNow runs a query at the current time, within the timeout.
func (p *Prometheus) queryNow(ctx context.Context, query string) (model.Value, error) {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	return p.retry(ctx, query, func(ctx context.Context) (model.Value, promv1.Warnings, error) {
		v, warnings, _, err := p.api.Query(ctx, query, p.env.Clock.Now())
		return v, warnings, err
	})
}

// Samples runs the rendered query as a range query over the window ending
// now and returns the points of its single series, leaving out NaN points.
func (p *Prometheus) Samples(ctx context.Context, q Query) ([]float64, error) {
	if q.Interval <= 0 {
		return nil, fmt.Errorf("prometheus: samples need a positive window, got %s", q.Interval)
	}
	query, err := render(p.query, q)
	if err != nil {
		return nil, fmt.Errorf("prometheus: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	end := p.env.Clock.Now()
	r := promv1.Range{Start: end.Add(-q.Interval), End: end, Step: max(q.Interval/rangePoints, time.Second)}
	v, err := p.retry(ctx, query, func(ctx context.Context) (model.Value, promv1.Warnings, error) {
		v, warnings, _, err := p.api.QueryRange(ctx, query, r)
		return v, warnings, err
	})
	if err != nil {
		return nil, err
	}
	return rangeValues(v)
}

// retry runs a query, again after a pause when the failure may be
// transient: a transport error or a 5xx answer. Anything else, such as a
// PromQL error, is final.
func (p *Prometheus) retry(ctx context.Context, query string, run func(context.Context) (model.Value, promv1.Warnings, error)) (model.Value, error) {
	backoff := promFirstBackoff
	for attempt := 1; ; attempt++ {
		v, warnings, err := run(ctx)
		if len(warnings) > 0 {
			p.env.Log.DebugContext(ctx, "prometheus warnings", "query", query, "warnings", []string(warnings))
		}
		if err == nil {
			return v, nil
		}
		if ctx.Err() != nil || !transient(err) || attempt == promAttempts {
			return nil, fmt.Errorf("prometheus query %q: %w", query, err)
		}
		p.env.Log.DebugContext(ctx, "prometheus query failed; retrying", "query", query, "attempt", attempt, "err", err)
		if rollout.Sleep(ctx, p.env.Clock, backoff) != nil {
			return nil, fmt.Errorf("prometheus query %q: %w (after %d attempts)", query, err, attempt)
		}
		backoff *= 2
	}
}

// transient tells failures worth another try: the server answered 5xx, or
// the request got no complete answer (a transport error). Prometheus'
// own verdicts on the query and unreadable credentials are final.
func transient(err error) bool {
	var apiErr *promv1.Error
	if errors.As(err, &apiErr) {
		return apiErr.Type == promv1.ErrServer
	}
	return !errors.Is(err, errCredentials)
}

// instantValue reads the one number of an instant query's result.
func instantValue(v model.Value) (float64, error) {
	switch r := v.(type) {
	case *model.Scalar:
		return checkValue(float64(r.Value))
	case model.Vector:
		switch len(r) {
		case 0:
			return 0, fmt.Errorf("prometheus: empty result: %w", ErrNoData)
		case 1:
			return checkValue(float64(r[0].Value))
		default:
			return 0, fmt.Errorf("prometheus: the query returned %d series, want one; aggregate it, such as with sum(...) or sum by () (...)", len(r))
		}
	case model.Matrix:
		return 0, errors.New("prometheus: the query returned a range vector; use an instant vector, such as rate(x[1m]) instead of x[1m]")
	default:
		return 0, fmt.Errorf("prometheus: the query returned a %s, want a number", v.Type())
	}
}

// rangeValues reads the points of a range query's single series.
func rangeValues(v model.Value) ([]float64, error) {
	m, ok := v.(model.Matrix)
	if !ok {
		return nil, fmt.Errorf("prometheus: the range query returned a %s, want a matrix", v.Type())
	}
	switch len(m) {
	case 0:
		return nil, fmt.Errorf("prometheus: empty result: %w", ErrNoData)
	case 1:
	default:
		return nil, fmt.Errorf("prometheus: the query returned %d series, want one; aggregate it, such as with sum(...) or sum by () (...)", len(m))
	}
	out := make([]float64, 0, len(m[0].Values))
	for _, p := range m[0].Values {
		x := float64(p.Value)
		if math.IsNaN(x) {
			continue
		}
		if math.IsInf(x, 0) {
			return nil, fmt.Errorf("prometheus: the query returned %v at %s", x, p.Timestamp.Time().UTC().Format(time.RFC3339))
		}
		out = append(out, x)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("prometheus: every point is NaN: %w", ErrNoData)
	}
	return out, nil
}

// checkValue turns NaN (such as a rate of 0/0 with no traffic) into no
// data, and refuses infinities, which no threshold can judge.
func checkValue(x float64) (float64, error) {
	if math.IsNaN(x) {
		return 0, fmt.Errorf("prometheus: the result is NaN (such as 0/0 without traffic): %w", ErrNoData)
	}
	if math.IsInf(x, 0) {
		return 0, fmt.Errorf("prometheus: the result is %v", x)
	}
	return x, nil
}
