package main

import (
	"fmt"
	"slices"
	"time"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/analysis"
	"github.com/pipit-dev/pipit/internal/engine"
	"github.com/pipit-dev/pipit/internal/spec"
)

// The builtin metrics the simulation measures, named as in docs/spec.md.
// They are spelled out rather than taken from internal/metric, which
// brings the whole proxy along.
const (
	requestSuccessRate = "request-success-rate"
	errorRateMetric    = "error-rate"
	requestCount       = "request-count"
	latencyP50         = "latency-p50"
	latencyP95         = "latency-p95"
	latencyP99         = "latency-p99"
	requestDuration    = "request-duration" // p99, as Flagger names it
)

// Versions of the simulated service.
const (
	stableVersion = "v1"
	canaryVersion = "v2"
)

// arm plays pipit's runtime for one configuration on the simulated clock,
// as the standalone daemon does on the real one: it carries out the
// engine's actions at once, feeds the sequential test every second, and
// measures the builtin metrics over each check's window. Only the traffic
// is simulated; every decision is the real engine's.
type arm struct {
	plan    spec.Plan
	st      v1alpha1.RolloutStatus
	weight  v1alpha1.Percent // what the router applies
	stable  string
	canary  string
	monitor *analysis.RateMonitor // nil when the sequential test is off
	win     window
	// total counts requests and errors since the canary's first traffic:
	// canary n, canary errors, stable n, stable errors.
	total [4]uint64
	// onset is when the canary first received traffic.
	onset time.Time
}

// window is what the builtin provider gathers between two checks.
type window struct {
	canaryN, canaryErrors, stableN, stableErrors uint64
	canaryLatencies                              []float64
	// Per-second medians, the samples of a compared latency-p50. A second
	// without requests to a version adds no sample for it, as in the
	// builtin provider.
	canaryP50s, stableP50s []float64
}

func newArm(c config) *arm {
	a := &arm{plan: c.plan, stable: stableVersion,
		st: v1alpha1.RolloutStatus{Phase: v1alpha1.PhaseIdle, Stable: &v1alpha1.VersionRef{Version: stableVersion}}}
	if sq := c.plan.Analysis.Sequential; sq.Enabled {
		a.monitor = analysis.NewRateMonitor(sq.Alpha)
	}
	return a
}

// deploy starts the rollout of the canary at now.
func (a *arm) deploy(now time.Time) error {
	return a.step(now, nil, []engine.Command{{Kind: engine.CommandDeploy, Canary: &v1alpha1.VersionRef{Version: canaryVersion}, Actor: "bench"}})
}

// done reports whether the rollout reached an end.
func (a *arm) done() bool { return a.st.Phase.Terminal() }

// tick takes the traffic of the second that ends at now, feeds the
// sequential test and runs one decision.
func (a *arm) tick(now time.Time, s *second) error {
	var alarms []analysis.Alarm
	if a.weight > 0 {
		a.record(s)
	}
	// As metric.Set.Tick does, the test is fed from the moment the canary
	// is deployed, so its starting counts are taken before traffic flows.
	if a.monitor != nil && a.canary != "" {
		alarm, err := a.monitor.Observe(a.canary, a.total[0], a.total[1], a.total[2], a.total[3])
		if err != nil {
			return err
		}
		if alarm != nil {
			alarms = []analysis.Alarm{*alarm}
		}
	}
	return a.step(now, alarms, nil)
}

func (a *arm) record(s *second) {
	w := &a.win
	w.canaryN += s.canaryN
	w.canaryErrors += s.canaryErrors
	w.stableN += s.stableN
	w.stableErrors += s.stableErrors
	w.canaryLatencies = append(w.canaryLatencies, s.canaryLatencies...)
	if s.canaryN > 0 {
		w.canaryP50s = append(w.canaryP50s, s.canaryP50)
	}
	if s.stableN > 0 {
		w.stableP50s = append(w.stableP50s, s.stableP50)
	}
	for i, n := range []uint64{s.canaryN, s.canaryErrors, s.stableN, s.stableErrors} {
		a.total[i] += n
	}
}

// step runs one decision at now, carries out its actions, and follows the
// transient phases until the rollout settles, as the runtime does.
func (a *arm) step(now time.Time, alarms []analysis.Alarm, cmds []engine.Command) error {
	for range 4 {
		in := engine.Input{Now: now, Commands: cmds, Alarms: alarms, Observed: engine.Observed{
			CanaryVersion: a.canary, CanaryHealth: engine.HealthUp, StableVersion: a.stable, Weight: a.weight}}
		if engine.CheckDue(a.st, now) {
			in.Measurements = a.measure()
		}
		r := engine.Step(a.plan, a.st, in)
		a.st = r.Status
		for _, act := range r.Actions {
			switch act.Kind {
			case engine.ActionSetWeight:
				a.weight = act.Weight
			case engine.ActionPromote:
				a.stable = act.Version.Version
			case engine.ActionDeployCanary:
				a.canary = act.Version.Version
			}
		}
		if a.onset.IsZero() && a.weight > 0 {
			a.onset = now
		}
		cmds, alarms = nil, nil
		if a.st.Phase != v1alpha1.PhasePromoting && a.st.Phase != v1alpha1.PhaseRollingBack {
			return nil
		}
	}
	return fmt.Errorf("rollout did not settle %s after the start: phase %s", now.Sub(t0), a.st.Phase)
}

// measure measures the plan's metrics over the window since the last
// check, and starts a new window.
func (a *arm) measure() []analysis.Measurement {
	w := a.win
	// The next window reuses the latency buffer: nothing below keeps it.
	a.win = window{canaryLatencies: w.canaryLatencies[:0]}
	slices.Sort(w.canaryLatencies)
	out := make([]analysis.Measurement, 0, len(a.plan.Analysis.Metrics))
	for _, m := range a.plan.Analysis.Metrics {
		meas := analysis.Measurement{Metric: m.Name}
		switch m.Name {
		case requestSuccessRate:
			meas.Canary, meas.Stable = successRate(w.canaryN, w.canaryErrors), successRate(w.stableN, w.stableErrors)
		case errorRateMetric:
			meas.Canary, meas.Stable = errorRate(w.canaryN, w.canaryErrors), errorRate(w.stableN, w.stableErrors)
		case requestCount:
			meas.Canary, meas.Stable = count(w.canaryN), count(w.stableN)
		default:
			// A latency quantile. The stable's latencies are not drawn one
			// by one, so a threshold judges the canary's value alone, as
			// thresholds do anyway.
			if v, ok := quantileOf(w.canaryLatencies, latencyQ(m.Name)); ok {
				meas.Canary = &v
			}
			if m.Compare != nil { // latency-p50, as loadConfig checked
				meas.CanarySamples, meas.StableSamples = w.canaryP50s, w.stableP50s
			}
		}
		out = append(out, meas)
	}
	return out
}

// latencyQ is the quantile a builtin latency metric reports.
func latencyQ(name string) float64 {
	switch name {
	case latencyP50:
		return 0.5
	case latencyP95:
		return 0.95
	}
	return 0.99 // latency-p99 and request-duration
}

func errorRate(n, errs uint64) *float64 {
	if n == 0 {
		return nil
	}
	v := 100 * float64(errs) / float64(n)
	return &v
}

func successRate(n, errs uint64) *float64 {
	e := errorRate(n, errs)
	if e == nil {
		return nil
	}
	v := 100 - *e
	return &v
}

func count(n uint64) *float64 {
	v := float64(n)
	return &v
}

// outcome is how one configuration's rollout of one run ended.
type outcome struct {
	rolledBack, promoted bool
	// detection is the time from the canary's first traffic to the
	// rollback decision.
	detection time.Duration
	// decidedBy names the metric or test that rolled the canary back.
	decidedBy string
}

func (a *arm) outcome() outcome {
	switch a.st.Phase {
	case v1alpha1.PhaseRolledBack:
		by := a.st.Rollback.Metric
		if by == "" {
			by = "other"
		}
		return outcome{rolledBack: true, detection: a.st.Rollback.At.Sub(a.onset), decidedBy: by}
	case v1alpha1.PhaseSucceeded:
		return outcome{promoted: true}
	}
	return outcome{}
}
