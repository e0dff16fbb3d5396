package metric

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/rollout"
)

// GoalCounts counts a goal's users of one version with the two queries of
// a goal's prometheus form: where pipit's proxy carries no traffic (in
// Kubernetes), the application counts its users and Prometheus keeps the
// counts. The conversion rate it measures comes with the counts behind
// it, so that the rate is judged by a test of proportions, as the proxy's
// are.
type GoalCounts struct {
	visitors, conversions *Prometheus
}

var _ Provider = (*GoalCounts)(nil)

// NewGoalCounts parses the goal's query templates; address is the
// Prometheus used when the goal names none (the controller's). It sends
// nothing.
func NewGoalCounts(g v1alpha1.PrometheusGoal, address string, env Env) (*GoalCounts, error) {
	if g.Address == "" {
		g.Address = address
	}
	if g.Address == "" {
		return nil, errors.New("prometheus: the goal names no address, and there is no default Prometheus (pipit controller --prometheus-url)")
	}
	visitors, err := NewPrometheus(g.Provider(g.Visitors), env)
	if err != nil {
		return nil, fmt.Errorf("visitors: %w", err)
	}
	conversions, err := NewPrometheus(g.Provider(g.Conversions), env)
	if err != nil {
		return nil, fmt.Errorf("conversions: %w", err)
	}
	return &GoalCounts{visitors: visitors, conversions: conversions}, nil
}

// Measure returns the version's conversion rate, in percent.
func (g *GoalCounts) Measure(ctx context.Context, q Query) (float64, error) {
	c, err := g.Conversions(ctx, q)
	if err != nil {
		return 0, err
	}
	return rate(c)
}

// Conversions returns the version's visitors and those who converted.
// Counts are rounded (increase() extrapolates to the window's ends), and
// conversions are capped at the visitors, which a scrape landing between
// the two queries could otherwise exceed. No series yet is no visitor.
func (g *GoalCounts) Conversions(ctx context.Context, q Query) (rollout.Conversions, error) {
	count := func(p *Prometheus, what string) (uint64, error) {
		x, err := p.Measure(ctx, q)
		if errors.Is(err, ErrNoData) {
			return 0, nil
		}
		if err != nil {
			return 0, fmt.Errorf("%s: %w", what, err)
		}
		return uint64(max(0, math.Round(x))), nil
	}
	visitors, err := count(g.visitors, "visitors")
	if err != nil {
		return rollout.Conversions{}, err
	}
	converted, err := count(g.conversions, "conversions")
	if err != nil {
		return rollout.Conversions{}, err
	}
	return rollout.Conversions{Visitors: visitors, Converted: min(converted, visitors)}, nil
}

// rate is a conversion rate in percent; no visitors is no data.
func rate(c rollout.Conversions) (float64, error) {
	if c.Visitors == 0 {
		return 0, fmt.Errorf("no visitors yet: %w", ErrNoData)
	}
	return 100 * float64(c.Converted) / float64(c.Visitors), nil
}
