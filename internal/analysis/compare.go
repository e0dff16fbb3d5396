package analysis

import (
	"fmt"
	"math"
	"strings"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/analysis/stats"
	"github.com/pipit-dev/pipit/internal/rollout"
	"github.com/pipit-dev/pipit/internal/spec"
)

// ScoreMetric is the name of the result that carries the canary score of
// the compared metrics.
const ScoreMetric = "canary-score"

// Compare classifies the canary's samples against the stable's (Kayenta's
// judge): the verdict for the check, and the classification for the score.
func Compare(m v1alpha1.MetricSpec, meas rollout.Measurement, confidence float64) (v1alpha1.MetricResult, stats.MetricResult) {
	r := v1alpha1.MetricResult{Name: m.Name, Canary: meas.Canary, Stable: meas.Stable, DryRun: m.DryRun}
	c := m.Compare
	dir, err := stats.ParseDirection(spec.CompareDirection(m))
	if err != nil {
		r.Verdict, r.Message = v1alpha1.VerdictError, fmt.Sprintf("%s: %v", m.Name, err)
		return r, stats.MetricResult{Name: m.Name, Classification: stats.MetricError}
	}
	cfg := stats.MetricConfig{Name: m.Name, Direction: dir, Critical: c.Critical, ConfLevel: confidence, Muted: m.DryRun}
	if c.Group != "" {
		cfg.Groups = []string{c.Group}
	}
	if c.AllowedChange != nil {
		cfg.Effect.AllowedIncrease = 1 + *c.AllowedChange
		cfg.Effect.AllowedDecrease = 1 - *c.AllowedChange
	}
	if meas.Err != nil {
		r.Verdict, r.Message = v1alpha1.VerdictError, fmt.Sprintf("%s: %v", m.Name, meas.Err)
		return r, stats.MetricResult{Name: m.Name, Groups: cfg.Groups, Classification: stats.MetricError, Muted: m.DryRun}
	}
	show := valueWriter(m)
	if _, conv := spec.ConversionGoal(m.Name); conv && m.Provider == nil {
		res := classifyConversions(meas, cfg)
		r.Verdict = verdictOf(res.Classification)
		r.Message = fmt.Sprintf("%s: canary %s vs stable (%s vs %s of %d vs %d users): %s",
			m.Name, res.Classification, show(res.Canary.Mean), show(res.Stable.Mean), res.Canary.Count, res.Stable.Count, res.Reason)
		return r, res
	}
	res := stats.Classify(meas.StableSamples, meas.CanarySamples, cfg)
	r.Verdict = verdictOf(res.Classification)
	r.Message = fmt.Sprintf("%s: canary %s vs stable (mean %s vs %s, %d vs %d samples): %s",
		m.Name, res.Classification, show(res.Canary.Mean), show(res.Stable.Mean), res.Canary.Count, res.Stable.Count, res.Reason)
	return r, res
}

// verdictOf is the verdict of a check on a compared metric classified c.
func verdictOf(c stats.Classification) v1alpha1.Verdict {
	switch c {
	case stats.MetricPass:
		return v1alpha1.VerdictSuccessful
	case stats.MetricHigh, stats.MetricLow:
		return v1alpha1.VerdictFailed
	case stats.MetricNoData, stats.MetricNoDataFail:
		return v1alpha1.VerdictNoData
	}
	return v1alpha1.VerdictError
}

// classifyConversions compares the canary's conversions with the
// stable's by the two-proportion z-test (stats.ProportionTest) instead of
// Mann-Whitney: a conversion is one yes or no per user, not a sample of a
// distribution. Each check tests the counts since the canary was
// deployed, at the confidence the caller spent on this check (see
// SpentConfidence), so that looking at every check does not add false
// alarms. A significant change in the metric's bad direction fails it,
// unless the ratio of the rates stays within the allowed change.
func classifyConversions(meas rollout.Measurement, cfg stats.MetricConfig) stats.MetricResult {
	res := stats.MetricResult{Name: cfg.Name, Groups: cfg.Groups, Muted: cfg.Muted, Effect: math.NaN(), MeanRatio: math.NaN()}
	c, s := meas.CanaryUsers, meas.StableUsers
	if c == nil || s == nil || c.Visitors == 0 || s.Visitors == 0 {
		res.Classification, res.Reason = stats.MetricNoData, "a version has no visitors yet"
		return res
	}
	pt, err := stats.ProportionTest(stats.Proportion{Successes: c.Converted, Trials: c.Visitors},
		stats.Proportion{Successes: s.Converted, Trials: s.Visitors}, cfg.ConfLevel)
	if err != nil {
		res.Classification, res.Reason = stats.MetricError, err.Error()
		return res
	}
	res.Canary = stats.SeriesSummary{Count: int(c.Visitors), Mean: 100 * pt.CanaryRate}
	res.Stable = stats.SeriesSummary{Count: int(s.Visitors), Mean: 100 * pt.StableRate}
	res.MeanRatio = pt.CanaryRate / pt.StableRate
	res.Effect = res.MeanRatio
	allowedUp, allowedDown := 1.0, 1.0
	if cfg.Effect.AllowedIncrease != 0 || cfg.Effect.AllowedDecrease != 0 {
		allowedUp, allowedDown = cfg.Effect.AllowedIncrease, cfg.Effect.AllowedDecrease
	}
	// A NaN ratio (no conversion on stable) cannot veto, as in
	// Kayenta's classifier.
	reaches := func(beyond bool) bool { return beyond || math.IsNaN(res.Effect) }
	res.Reason = pt.Reason
	switch {
	case pt.Verdict == stats.ProportionNotEnoughData:
		res.Classification = stats.MetricNoData
	case pt.Verdict == stats.ProportionWorse && cfg.Direction != stats.Increase && reaches(res.Effect <= allowedDown):
		res.Classification, res.Critical = stats.MetricLow, cfg.Critical
	case pt.Verdict == stats.ProportionBetter && cfg.Direction != stats.Decrease && reaches(res.Effect >= allowedUp):
		res.Classification, res.Critical = stats.MetricHigh, cfg.Critical
	default:
		res.Classification = stats.MetricPass
		if pt.Verdict != stats.ProportionNoDifference {
			res.Reason += "; not a change in the failing direction beyond the allowed change"
		}
	}
	return res
}

// SpentConfidence is the confidence for the check-th test (from 1) of the
// same canary on samples that grow from check to check, as the builtin
// metrics' do: the check-th test gets 1/(check·(check+1)) of the error
// that confidence allows, and since those shares add up to one, the chance
// that any test of the rollout fails a canary no worse than stable stays
// within 1 − confidence, however many checks there are, instead of within
// it at each check. The early checks, on little data, get the largest
// shares; the later ones need stronger evidence, which their larger
// samples give a real regression.
func SpentConfidence(confidence float64, check int) float64 {
	check = max(check, 1)
	return 1 - (1-confidence)/float64(check*(check+1))
}

// compare is Compare without the classification, for Evaluate.
func compare(m v1alpha1.MetricSpec, meas rollout.Measurement, confidence float64) (v1alpha1.Verdict, string) {
	r, _ := Compare(m, meas, confidence)
	return r.Verdict, r.Message
}

// Score turns the compared metrics' classifications into one result:
// successful at or above pass, failed at or below marginal (or when a
// critical metric failed), inconclusive in between.
func Score(classified []stats.MetricResult, pass, marginal float64, weights map[string]float64) v1alpha1.MetricResult {
	r := v1alpha1.MetricResult{Name: ScoreMetric}
	card, err := stats.Score(classified, stats.ScoreConfig{GroupWeights: weights,
		Thresholds: stats.Thresholds{Pass: pass, Marginal: marginal}})
	if err != nil {
		r.Verdict, r.Message = v1alpha1.VerdictNoData, ScoreMetric+": "+err.Error()
		return r
	}
	score := card.Score
	r.Canary = &score
	switch {
	case card.NoData:
		// Too few metrics had data to score: the score's noData policy
		// decides (hold: wait for traffic, then fail), not a failure now.
		r.Verdict = v1alpha1.VerdictNoData
	case card.Verdict == stats.VerdictPass:
		r.Verdict = v1alpha1.VerdictSuccessful
	case card.Verdict == stats.VerdictFail:
		r.Verdict = v1alpha1.VerdictFailed
	default:
		r.Verdict = v1alpha1.VerdictInconclusive
	}
	r.Message = fmt.Sprintf("%s %s (pass %s, marginal %s)", ScoreMetric, num(score), num(pass), num(marginal))
	if card.Reason != "" {
		r.Message += ": " + card.Reason
	}
	// Name the metrics that pulled the score down, so that a rollback on
	// the score says what was worse.
	var against []string
	for _, c := range classified {
		switch c.Classification {
		case stats.MetricHigh, stats.MetricLow, stats.MetricNoDataFail:
			if !c.Muted {
				against = append(against, c.Name+" "+string(c.Classification))
			}
		}
	}
	if len(against) > 0 {
		r.Message += "; against the canary: " + strings.Join(against, ", ")
	}
	return r
}
