package main

import (
	"fmt"
	"iter"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/analysis"
	"github.com/pipit-dev/pipit/internal/engine"
	"github.com/pipit-dev/pipit/internal/metric"
	"github.com/pipit-dev/pipit/internal/rollout"
	"github.com/pipit-dev/pipit/internal/spec"
)

// The builtin metrics the simulation measures.
const (
	requestSuccessRate = metric.RequestSuccessRate
	errorRateMetric    = metric.ErrorRate
	requestCount       = metric.RequestCount
	latencyP50         = metric.LatencyP50
	latencyP95         = metric.LatencyP95
	latencyP99         = metric.LatencyP99
	requestDuration    = metric.RequestDuration // p99, as Flagger names it
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
	// canaryLatencies are the latencies of every canary request so far,
	// for the samples of a compared metric, which grow with the rollout.
	canaryLatencies []float64
	// onset is when the canary first received traffic.
	onset time.Time
	// traffic and rng draw the stable's latencies that a comparison takes.
	traffic traffic
	rng     *rand.Rand
}

// window is what the builtin provider gathers between two checks.
type window struct {
	canaryN, canaryErrors, stableN, stableErrors uint64
	canaryLatencies                              []float64
}

func newArm(c config, tr traffic, rng *rand.Rand) *arm {
	a := &arm{plan: c.plan, stable: stableVersion, traffic: tr, rng: rng,
		st: v1alpha1.RolloutStatus{Phase: v1alpha1.PhaseIdle, Stable: &v1alpha1.VersionRef{Version: stableVersion}}}
	if sq := c.plan.Analysis.Sequential; sq.Enabled {
		a.monitor = analysis.NewRateMonitor(sq.Alpha)
	}
	return a
}

// deploy starts the rollout of the canary at now.
func (a *arm) deploy(now time.Time) error {
	return a.step(now, nil, []rollout.Command{{Kind: rollout.CommandDeploy, Canary: &v1alpha1.VersionRef{Version: canaryVersion}, Actor: "bench"}})
}

// done reports whether the rollout reached an end.
func (a *arm) done() bool { return a.st.Phase.Terminal() }

// tick takes the traffic of the second that ends at now, feeds the
// sequential test and runs one decision.
func (a *arm) tick(now time.Time, s *second) error {
	var alarms []rollout.Alarm
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
			alarms = []rollout.Alarm{*alarm}
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
	a.canaryLatencies = append(a.canaryLatencies, s.canaryLatencies...)
	for i, n := range []uint64{s.canaryN, s.canaryErrors, s.stableN, s.stableErrors} {
		a.total[i] += n
	}
}

// step runs one decision at now, carries out its actions, and follows the
// transient phases until the rollout settles, as the runtime does.
func (a *arm) step(now time.Time, alarms []rollout.Alarm, cmds []rollout.Command) error {
	for range 4 {
		in := engine.Input{Now: now, Commands: cmds, Alarms: alarms, Observed: rollout.Observed{
			CanaryVersion: a.canary, CanaryHealth: rollout.HealthUp, StableVersion: a.stable, Weight: a.weight}}
		if engine.CheckDue(a.st, now) {
			in.Measurements = a.measure()
		}
		r := engine.Step(a.plan, a.st, in)
		a.st = r.Status
		for _, act := range r.Actions {
			switch act.Kind {
			case rollout.ActionSetWeight:
				a.weight = act.Weight
			case rollout.ActionPromote:
				a.stable = act.Version.Version
			case rollout.ActionDeployCanary:
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
func (a *arm) measure() []rollout.Measurement {
	w := a.win
	// The next window reuses the latency buffer: nothing below keeps it.
	a.win = window{canaryLatencies: w.canaryLatencies[:0]}
	slices.Sort(w.canaryLatencies)
	out := make([]rollout.Measurement, 0, len(a.plan.Analysis.Metrics))
	for _, m := range a.plan.Analysis.Metrics {
		meas := rollout.Measurement{Metric: m.Name}
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
			if m.Compare != nil { // a latency, as loadConfig checked
				// As the builtin provider samples: equal groups of each
				// version's requests since the canary's first, of the
				// stable's as many as it uses.
				k := metric.GroupSize(m.Name, a.total[0])
				stable := a.traffic.stableLatencies(a.rng, min(a.total[2], uint64(metric.MaxSamples*k)), nil)
				meas.CanarySamples = metric.Samples(m.Name, k, each(a.canaryLatencies))
				meas.StableSamples = metric.Samples(m.Name, k, each(stable))
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

// each describes values one request each, as metric.Samples takes them.
func each(values []float64) iter.Seq2[float64, uint64] {
	return func(yield func(float64, uint64) bool) {
		for _, v := range values {
			if !yield(v, 1) {
				return
			}
		}
	}
}
