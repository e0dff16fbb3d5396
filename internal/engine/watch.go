package engine

import (
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/analysis"
	"github.com/pipit-dev/pipit/internal/rollout"
	"github.com/pipit-dev/pipit/internal/spec"
)

// The watch after a promotion (spec.postPromotion): before the switch the
// engine records the previous stable's value of each watched metric from
// the last check, its baseline; once the promotion completed, each check
// measures the new stable alone, and a metric that fails its bound or is
// worse than its baseline undoes the promotion at once, while the previous
// version is still warm (validation keeps the watch within the undo
// window).

// watchActor is who undoes a promotion whose watch failed, in the history.
const watchActor = "the watch after promotion"

// recordBaselines keeps, before the switch, the stable values the last
// check measured of the metrics the watch will measure. A metric without
// one (no data, or a promotion before any check) is held to its bound
// alone.
func (m *machine) recordBaselines() {
	m.st.Watch = nil
	pp := m.plan.PostPromotion
	if pp == nil {
		return
	}
	w := &v1alpha1.PostPromotionWatch{}
	for _, pm := range pp.Metrics {
		for _, r := range m.st.Analysis.LastResults {
			if r.Name == pm.Name && r.Stable != nil {
				w.Baselines = append(w.Baselines, v1alpha1.Baseline{Metric: pm.Name, Value: *r.Stable})
			}
		}
	}
	m.st.Watch = w
}

// startWatch starts the watch once the promotion completed, as long as
// there is a previous version to go back to.
func (m *machine) startWatch() {
	pp, w := m.plan.PostPromotion, m.st.Watch
	if pp == nil || w == nil {
		return
	}
	if m.st.Previous == nil {
		m.st.Watch = nil
		return
	}
	w.Until = micro(m.now.Add(pp.Duration))
	w.NextCheckAt = micro(m.now.Add(m.plan.Analysis.Interval))
	m.event(v1alpha1.EventNormal, "PostPromotionStarted", rollout.Command{},
		"Watching %s for %s after its promotion, with %s warm to go back to", m.st.Stable.Version, pp.Duration, m.st.Previous.Version)
}

// watchDue reports whether a check of the new stable is due at now.
func watchDue(st v1alpha1.RolloutStatus, now time.Time) bool {
	return rollout.Watching(st) && !now.Before(st.Watch.NextCheckAt.Time)
}

// watchPromotion judges a due check of the new stable, and ends the watch
// when it failed or its time is up.
func (m *machine) watchPromotion() {
	if !rollout.Watching(m.st) {
		return
	}
	if m.plan.PostPromotion == nil { // removed from the spec meanwhile
		m.st.Watch = nil
		return
	}
	w := m.st.Watch
	if m.in.Measurements != nil && watchDue(m.st, m.now) {
		if reason := m.judgeWatch(); reason != "" {
			m.failWatch(reason)
			return
		}
	}
	if !m.now.Before(w.Until.Time) {
		w.Outcome, w.NextCheckAt = v1alpha1.WatchPassed, nil
		m.event(v1alpha1.EventNormal, "PostPromotionPassed", rollout.Command{},
			"Watch of %s after its promotion passed: %d checks of the new stable, none failed", m.st.Stable.Version, w.Checks)
	}
}

// judgeWatch judges one check of the new stable and returns why it
// failed; empty when it did not. Errors and missing data are reported in
// the results but decide nothing: the watch undoes on evidence only.
func (m *machine) judgeWatch() string {
	w := m.st.Watch
	w.NextCheckAt = micro(m.now.Add(m.plan.Analysis.Interval))
	w.Checks++
	byName := make(map[string]rollout.Measurement, len(m.in.Measurements))
	for _, meas := range m.in.Measurements {
		byName[meas.Metric] = meas
	}
	w.LastResults = nil
	failed := ""
	for _, pm := range m.plan.PostPromotion.Metrics {
		r := judgeStable(pm.MetricSpec, byName[pm.Name], baselineOf(w, pm.Name))
		r.Name = pm.Name
		w.LastResults = append(w.LastResults, r)
		if r.Verdict == v1alpha1.VerdictFailed && !r.DryRun && failed == "" {
			failed = r.Message
		}
	}
	return failed
}

func baselineOf(w *v1alpha1.PostPromotionWatch, metric string) *float64 {
	for _, b := range w.Baselines {
		if b.Metric == metric {
			v := b.Value
			return &v
		}
	}
	return nil
}

// judgeStable judges the stable version alone during the watch after a
// promotion: its value (meas.Stable) against the metric's bound and
// conditions, in which `stable` is the baseline, then against the
// baseline in the metric's bad direction (spec.CompareDirection), beyond
// compare.allowedChange or spec.DefaultAllowedChange. A metric whose bad
// direction is "either" only because nothing says otherwise (a query of
// the user's without compare) is held to its bound alone. The result
// carries the new stable's value as Canary (the version under watch) and
// the baseline as Stable.
func judgeStable(m v1alpha1.MetricSpec, meas rollout.Measurement, baseline *float64) v1alpha1.MetricResult {
	bound := m
	bound.Compare = nil
	r := analysis.Evaluate(bound, rollout.Measurement{Metric: m.Name, Canary: meas.Stable, Stable: baseline, Err: meas.Err}, 0)
	if r.Verdict != v1alpha1.VerdictSuccessful || baseline == nil || r.Canary == nil {
		return r
	}
	dir := spec.CompareDirection(m)
	if dir == spec.DirectionEither && m.Compare == nil {
		return r
	}
	allowed := spec.DefaultAllowedChange
	if m.Compare != nil && m.Compare.AllowedChange != nil {
		allowed = *m.Compare.AllowedChange
	}
	v, base := *r.Canary, *baseline
	slack := math.Abs(base) * allowed
	worse := ""
	switch {
	case dir != spec.DirectionDecrease && v > base+slack:
		worse = "above"
	case dir != spec.DirectionIncrease && v < base-slack:
		worse = "below"
	}
	if worse != "" {
		r.Verdict = v1alpha1.VerdictFailed
		unit := spec.MetricUnit(m)
		show := func(x float64) string { return spec.WithUnit(strconv.FormatFloat(x, 'g', 4, 64), unit) }
		r.Message = fmt.Sprintf("%s %s is %s the previous version's %s by more than the allowed change of %.4g%%",
			m.Name, show(v), worse, show(base), allowed*100)
	}
	return r
}

// failWatch undoes the promotion whose watch failed, as `pipit undo`
// would, while the previous version is still warm; once the undo window
// has closed (the runtime was down, or a late check) the promotion
// stands, and the history says so.
func (m *machine) failWatch(reason string) {
	m.st.Watch.Outcome, m.st.Watch.NextCheckAt = v1alpha1.WatchFailed, nil
	promoted := m.st.Stable.Version
	if m.st.Previous == nil || !m.undoWindowOpen() {
		m.event(v1alpha1.EventWarning, "PostPromotionFailed", rollout.Command{},
			"Watch after the promotion of %s failed: %s; the undo window of %s has closed, so the promotion stands: roll forward with a fix",
			promoted, reason, m.plan.UndoWindow)
		return
	}
	m.event(v1alpha1.EventWarning, "PostPromotionFailed", rollout.Command{},
		"Watch after the promotion of %s failed: %s; undoing it", promoted, reason)
	_ = m.undo(rollout.Command{Kind: rollout.CommandUndo, Actor: watchActor, Reason: reason}) // the window is open
	m.st.Rollback.Metric = metricOf(m.st.Watch.LastResults)
}

// metricOf names the first metric that failed.
func metricOf(results []v1alpha1.MetricResult) string {
	for _, r := range results {
		if r.Verdict == v1alpha1.VerdictFailed && !r.DryRun {
			return r.Name
		}
	}
	return ""
}
