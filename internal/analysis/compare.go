package analysis

import (
	"fmt"
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
	res := stats.Classify(meas.StableSamples, meas.CanarySamples, cfg)
	switch res.Classification {
	case stats.MetricPass:
		r.Verdict = v1alpha1.VerdictSuccessful
	case stats.MetricHigh, stats.MetricLow:
		r.Verdict = v1alpha1.VerdictFailed
	case stats.MetricNoData, stats.MetricNoDataFail:
		r.Verdict = v1alpha1.VerdictNoData
	default:
		r.Verdict = v1alpha1.VerdictError
	}
	show := valueWriter(m)
	r.Message = fmt.Sprintf("%s: canary %s vs stable (mean %s vs %s, %d vs %d samples): %s",
		m.Name, res.Classification, show(res.Canary.Mean), show(res.Stable.Mean), res.Canary.Count, res.Stable.Count, res.Reason)
	return r, res
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
