package metric

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/analysis"
	"github.com/pipit-dev/pipit/internal/rollout"
	"github.com/pipit-dev/pipit/internal/spec"
)

// Set measures one rollout's analysis metrics: builtin ones from the
// proxy or the process target, the others through their providers, for
// the canary and for the stable version over the same window. It also runs the continuous
// sequential error-rate test on the proxy's counts.
type Set struct {
	rollout, namespace string
	plan               spec.AnalysisPlan
	// watched are the metrics of the watch after a promotion, measured by
	// their own providers: a watched metric may share an analysis
	// metric's name and not its query.
	watched          []spec.PlanMetric
	watchedProviders map[string]Provider
	builtin          *Builtin    // nil where there is no built-in proxy
	usage            UsageSource // nil where pipit runs no processes
	providers        map[string]Provider
	monitor          *analysis.RateMonitor
	clock            rollout.Clock
}

// SetConfig says what a Set measures.
type SetConfig struct {
	Rollout, Namespace string
	Plan               spec.AnalysisPlan
	// PostPromotion is the watch after a promotion, whose metrics are
	// measured on the stable version alone while it runs; nil when there
	// is none.
	PostPromotion *spec.PostPromotionPlan
	// Builtin is the built-in proxy's provider; nil when metrics come only
	// from providers.
	Builtin *Builtin
	// Usage measures cpu-usage and memory-usage: the process target; nil
	// when the versions are not processes pipit runs.
	Usage UsageSource
	// GoalPrometheus is the Prometheus that counts the goals that name
	// none (the controller's --prometheus-url); empty when there is none.
	GoalPrometheus string
	// Env is the providers' clock and logger.
	Env
}

// NewSet builds the providers of every metric. It fails on a metric it
// cannot measure, naming it.
func NewSet(cfg SetConfig) (*Set, error) {
	s := &Set{rollout: cfg.Rollout, namespace: cfg.Namespace, plan: cfg.Plan, builtin: cfg.Builtin, usage: cfg.Usage,
		clock: rollout.ClockOrSystem(cfg.Clock)}
	var err error
	if s.providers, err = newProviders(cfg.Plan.Metrics, cfg); err != nil {
		return nil, err
	}
	if pp := cfg.PostPromotion; pp != nil {
		s.watched = pp.Metrics
		if s.watchedProviders, err = newProviders(pp.Metrics, cfg); err != nil {
			return nil, fmt.Errorf("spec.postPromotion: %w", err)
		}
	}
	if cfg.Plan.Sequential.Enabled && cfg.Builtin != nil {
		s.monitor = analysis.NewRateMonitor(cfg.Plan.Sequential.Alpha)
	}
	return s, nil
}

// newProviders builds the provider of each metric measured by one; the
// others are measured by the built-in proxy, the processes' usage or the
// hook runner, and it fails on one that none of them can measure.
func newProviders(metrics []spec.PlanMetric, cfg SetConfig) (map[string]Provider, error) {
	providers := map[string]Provider{}
	for _, m := range metrics {
		if m.Hook != nil {
			continue // measured by the runtime's hook runner
		}
		if m.GoalCounts != nil {
			p, err := NewGoalCounts(*m.GoalCounts, cfg.GoalPrometheus, cfg.Env)
			if err != nil {
				return nil, fmt.Errorf("metric %s: %w", m.Name, err)
			}
			providers[m.Name] = p
			continue
		}
		if m.Provider == nil && isUsage(m.Name) {
			if cfg.Usage == nil {
				return nil, fmt.Errorf("metric %s: measured on processes pipit runs, and this rollout runs none", m.Name)
			}
			continue
		}
		if m.Provider == nil {
			if cfg.Builtin == nil {
				return nil, fmt.Errorf("metric %s: no provider, and no built-in proxy to measure it", m.Name)
			}
			continue
		}
		p, err := NewProvider(m.MetricSpec, cfg.Env)
		if err != nil {
			return nil, fmt.Errorf("metric %s: %w", m.Name, err)
		}
		providers[m.Name] = p
	}
	return providers, nil
}

// Measure measures every metric for the status' canary and stable
// versions; during the watch after a promotion, the watched metrics for
// the stable version alone (there is no canary). Provider queries run
// concurrently, each bounded by its own timeout and by ctx.
func (s *Set) Measure(ctx context.Context, st v1alpha1.RolloutStatus) []rollout.Measurement {
	var metrics []spec.PlanMetric
	plan, providers := s.plan.Metrics, s.providers
	if rollout.Watching(st) {
		plan, providers = s.watched, s.watchedProviders
	}
	for _, m := range plan {
		if m.Hook == nil {
			metrics = append(metrics, m)
		}
	}
	out := make([]rollout.Measurement, len(metrics))
	var builtin []spec.PlanMetric
	var builtinIdx []int
	var wg sync.WaitGroup
	for i, m := range metrics {
		p, ok := providers[m.Name]
		if !ok {
			builtin, builtinIdx = append(builtin, m), append(builtinIdx, i)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i] = s.measureProvider(ctx, m, p, st)
		}()
	}
	for j, meas := range s.measureBuiltin(builtin, st) {
		out[builtinIdx[j]] = meas
	}
	wg.Wait()
	return out
}

// measureBuiltin measures the builtin metrics: the proxy's over its
// window, the processes' usage now.
func (s *Set) measureBuiltin(metrics []spec.PlanMetric, st v1alpha1.RolloutStatus) []rollout.Measurement {
	out := make([]rollout.Measurement, len(metrics))
	var proxied []spec.PlanMetric
	var used []string
	var proxiedIdx, usedIdx []int
	for i, m := range metrics {
		if isUsage(m.Name) {
			used, usedIdx = append(used, m.Name), append(usedIdx, i)
		} else {
			proxied, proxiedIdx = append(proxied, m), append(proxiedIdx, i)
		}
	}
	// The proxy's window starts again at every check, even when no
	// metric of its own is measured.
	if s.builtin != nil {
		for j, meas := range s.builtin.Measure(proxied) {
			out[proxiedIdx[j]] = meas
		}
	}
	if len(used) > 0 { // NewSet made sure there is a source
		for j, meas := range measureUsage(s.usage, used, st) {
			out[usedIdx[j]] = meas
		}
	}
	return out
}

func (s *Set) measureProvider(ctx context.Context, m spec.PlanMetric, p Provider, st v1alpha1.RolloutStatus) rollout.Measurement {
	q := Query{Rollout: s.rollout, Namespace: s.namespace, Interval: s.plan.Interval, Elapsed: s.elapsed(st), Vars: s.plan.Vars, Args: m.Args}
	if g, ok := p.(*GoalCounts); ok {
		return measureGoal(ctx, m.Name, g, q, st)
	}
	meas := rollout.Measurement{Metric: m.Name}
	side := func(role string, v *v1alpha1.VersionRef) (*float64, []float64, error) {
		if v == nil {
			return nil, nil, nil
		}
		q := q
		q.Role, q.Version = role, v.Version
		if sp, ok := p.(SampleProvider); ok && m.Compare != nil {
			samples, err := sp.Samples(ctx, q)
			if err != nil {
				return nil, nil, err
			}
			return mean(samples), samples, nil
		}
		val, err := p.Measure(ctx, q)
		if err != nil {
			return nil, nil, err
		}
		return &val, nil, nil
	}
	var err error
	meas.Canary, meas.CanarySamples, err = side("canary", st.Canary)
	if errors.Is(err, ErrNoData) {
		return meas // no data: not an error
	}
	if err != nil {
		meas.Err = err
		return meas
	}
	// The stable's value is for comparison: missing stable data leaves it
	// empty rather than failing the canary's measurement.
	stable, stableSamples, err := side("stable", st.Stable)
	if err != nil && !errors.Is(err, ErrNoData) && (m.Compare != nil || usesStable(m.MetricSpec)) {
		meas.Err = fmt.Errorf("stable: %w", err)
	}
	meas.Stable, meas.StableSamples = stable, stableSamples
	return meas
}

// elapsed is the time since the experiment started, else since the
// rollout started, in whole seconds: the window of the goals' counts.
// Without either it is the analysis interval.
func (s *Set) elapsed(st v1alpha1.RolloutStatus) time.Duration {
	from := st.StartedAt
	if st.Experiment != nil && st.Experiment.StartedAt != nil {
		from = st.Experiment.StartedAt
	}
	if from == nil {
		return max(s.plan.Interval.Round(time.Second), time.Second)
	}
	d := s.clock.Now().Sub(from.Time)
	return max((d + time.Second - 1).Truncate(time.Second), time.Second)
}

// measureGoal counts a goal's users of each version: the conversion
// rates, with the counts behind them.
func measureGoal(ctx context.Context, name string, g *GoalCounts, q Query, st v1alpha1.RolloutStatus) rollout.Measurement {
	meas := rollout.Measurement{Metric: name}
	side := func(role string, v *v1alpha1.VersionRef) (*float64, *rollout.Conversions, error) {
		if v == nil {
			return nil, nil, nil
		}
		q := q
		q.Role, q.Version = role, v.Version
		c, err := g.Conversions(ctx, q)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", role, err)
		}
		r, err := rate(c)
		if err != nil {
			return nil, &c, nil
		}
		return &r, &c, nil
	}
	var errCanary, errStable error
	meas.Canary, meas.CanaryUsers, errCanary = side("canary", st.Canary)
	meas.Stable, meas.StableUsers, errStable = side("stable", st.Stable)
	meas.Err = errors.Join(errCanary, errStable)
	return meas
}

// usesStable reports whether a metric's judgement reads the stable value.
func usesStable(m v1alpha1.MetricSpec) bool {
	return containsWord(m.SuccessCondition, "stable") || containsWord(m.FailureCondition, "stable")
}

// Tick samples the built-in proxy and feeds the sequential test; it
// returns an alarm when the test found the canary worse. The runtime calls
// it at every tick, between checks.
func (s *Set) Tick(st v1alpha1.RolloutStatus) []rollout.Alarm {
	if s.builtin == nil {
		return nil
	}
	stats := s.builtin.src.Stats()
	// The test takes its starting counts even before the canary gets
	// traffic, so the first second of traffic already counts as evidence.
	if s.monitor == nil || st.Canary == nil || stats.Canary.Version != st.Canary.Version {
		return nil
	}
	c, b := stats.Canary, stats.Stable
	alarm, err := s.monitor.Observe(c.Version, c.Requests, c.Errors5xx+c.TransportErrors, b.Requests, b.Errors5xx+b.TransportErrors)
	if err != nil || alarm == nil {
		return nil
	}
	return []rollout.Alarm{*alarm}
}

// Reset starts a new window for a new canary.
func (s *Set) Reset() {
	if s.builtin != nil {
		s.builtin.Reset()
	}
}

func mean(v []float64) *float64 {
	if len(v) == 0 {
		return nil
	}
	sum := 0.0
	for _, x := range v {
		sum += x
	}
	m := sum / float64(len(v))
	return &m
}

// containsWord reports whether s names the identifier w.
func containsWord(s, w string) bool {
	isIdent := func(c byte) bool {
		return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
	}
	for i := 0; i+len(w) <= len(s); i++ {
		if s[i:i+len(w)] == w && (i == 0 || !isIdent(s[i-1])) && (i+len(w) == len(s) || !isIdent(s[i+len(w)])) {
			return true
		}
	}
	return false
}
