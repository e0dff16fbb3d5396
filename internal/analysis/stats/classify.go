package stats

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
)

// Classification is the verdict on one metric, spelled as Kayenta spells it.
type Classification string

// The classifications Classify returns.
const (
	MetricPass Classification = "Pass" // no meaningful change
	MetricHigh Classification = "High" // the canary is meaningfully higher
	MetricLow  Classification = "Low"  // the canary is meaningfully lower
	// MetricNoData: a side had no values; left out of group scores.
	MetricNoData Classification = "Nodata"
	// MetricNoDataFail: a side had no values and the metric must have
	// data; counted as a failure in its groups.
	MetricNoDataFail Classification = "NodataFailMetric"
	// MetricError: the test could not run; left out of group scores.
	MetricError Classification = "Error"
)

// Direction says which change of a metric is bad.
type Direction int

// Directions. The zero value is Either, Kayenta's default.
const (
	Either   Direction = iota // an increase or a decrease fails
	Increase                  // only an increase fails (latency, errors)
	Decrease                  // only a decrease fails (throughput, successes)
)

// ParseDirection reads "increase", "decrease" or "either". Kayenta reads an
// unknown word as either; pipit refuses it, since a typo would otherwise
// silently widen what fails.
func ParseDirection(s string) (Direction, error) {
	for d := Either; d <= Decrease; d++ {
		if d.String() == s {
			return d, nil
		}
	}
	return Either, fmt.Errorf("unknown direction %q (want increase, decrease or either)", s)
}

// String returns the direction's configuration word.
func (d Direction) String() string {
	switch d {
	case Either:
		return "either"
	case Increase:
		return "increase"
	case Decrease:
		return "decrease"
	}
	return fmt.Sprintf("Direction(%d)", int(d))
}

// NaNStrategy says what happens to NaN values (missing data points).
type NaNStrategy int

// NaN strategies. The zero value is NaNRemove, Kayenta's default.
const (
	NaNRemove  NaNStrategy = iota // drop NaNs
	NaNReplace                    // count NaNs as 0
)

// EffectMeasure names the effect size that must exceed the allowed change
// before a significant shift fails a metric.
type EffectMeasure int

// Effect measures. The zero value is MeanRatio, Kayenta's default.
const (
	// MeanRatio is mean(canary) / mean(stable); NaN when either mean is 0.
	MeanRatio EffectMeasure = iota
	// CLES is the common-language effect size, P(canary > stable) +
	// P(tie)/2 over all pairs (Vargha-Delaney A): 0.5 means no effect.
	CLES
)

// EffectSize holds the thresholds on the effect measure. A zero threshold
// means Kayenta's default for the measure: 1.0 for MeanRatio (any move in
// the failing direction) and 0.5 for CLES.
type EffectSize struct {
	Measure EffectMeasure // which effect the thresholds apply to
	// AllowedIncrease is the smallest effect that lets a metric be High.
	AllowedIncrease float64
	// AllowedDecrease is the largest effect that lets a metric be Low.
	AllowedDecrease float64
	// CriticalIncrease is the smallest effect at which a High critical
	// metric fails the whole canary.
	CriticalIncrease float64
	// CriticalDecrease is the largest effect at which a Low critical metric
	// fails the whole canary.
	CriticalDecrease float64
}

// MetricConfig configures the classification of one metric, after
// Kayenta's per-metric canary analysis configuration.
type MetricConfig struct {
	Name   string   // copied to the result
	Groups []string // the score groups the metric counts in
	// Direction is the direction of change that fails the metric.
	Direction Direction
	// NaNStrategy says whether NaNs are dropped or read as 0.
	NaNStrategy NaNStrategy
	// Critical makes a failure of this metric fail the whole canary.
	Critical bool
	// MustHaveData turns missing data into a counted failure
	// (MetricNoDataFail) for a metric that is not critical.
	MustHaveData bool
	// Muted keeps the metric in reports but out of the score.
	Muted bool
	// Effect gates High and Low on the size of the change, on top of
	// its significance.
	Effect EffectSize
	// ConfLevel is the two-sided confidence level of the shift's interval;
	// 0 means 0.98, the level Kayenta's judge hard-codes.
	ConfLevel float64
	// Tolerance is the fraction of the estimated shift that the interval
	// must clear on top of excluding zero; 0 means 0.25, Kayenta's value.
	Tolerance float64
}

// Kayenta's fixed classifier parameters (NetflixACAJudge).
const (
	DefaultConfLevel = 0.98
	DefaultTolerance = 0.25
)

func (c MetricConfig) withDefaults() MetricConfig {
	if c.ConfLevel == 0 {
		c.ConfLevel = DefaultConfLevel
	}
	if c.Tolerance == 0 {
		c.Tolerance = DefaultTolerance
	}
	def := 1.0
	if c.Effect.Measure == CLES {
		def = 0.5
	}
	for _, v := range []*float64{&c.Effect.AllowedIncrease, &c.Effect.AllowedDecrease, &c.Effect.CriticalIncrease, &c.Effect.CriticalDecrease} {
		if *v == 0 {
			*v = def
		}
	}
	return c
}

func (c MetricConfig) validate() error {
	switch {
	case c.Direction < Either || c.Direction > Decrease:
		return fmt.Errorf("unknown direction %v", c.Direction)
	case c.NaNStrategy < NaNRemove || c.NaNStrategy > NaNReplace:
		return fmt.Errorf("unknown NaN strategy %d", c.NaNStrategy)
	case c.Effect.Measure < MeanRatio || c.Effect.Measure > CLES:
		return fmt.Errorf("unknown effect measure %d", c.Effect.Measure)
	case !(c.ConfLevel > 0 && c.ConfLevel < 1):
		return fmt.Errorf("confidence level %v is not in (0, 1)", c.ConfLevel)
	case !(c.Tolerance >= 0) || math.IsInf(c.Tolerance, 0):
		return fmt.Errorf("tolerance %v is not a non-negative number", c.Tolerance)
	}
	return nil
}

// SeriesSummary describes one side's values after NaN handling.
type SeriesSummary struct {
	Count int     // values left after NaN handling
	Mean  float64 // NaN when there are no values
}

// MetricResult is the classification of one metric with the numbers behind it.
type MetricResult struct {
	// Name, Groups and Muted are copied from the configuration, for Score.
	Name   string
	Groups []string
	Muted  bool
	// Classification is the verdict, and Reason says why in a sentence.
	Classification Classification
	Reason         string
	// Critical marks a failure that fails the whole canary.
	Critical bool
	// Effect is the configured effect measure; NaN when undefined or not
	// computed.
	Effect float64
	// MeanRatio is mean(canary) / mean(stable), the deviation to show
	// people whatever the effect measure; NaN when undefined.
	MeanRatio float64
	// Canary and Stable describe the values compared.
	Canary, Stable SeriesSummary
	// Test is the rank-sum test of canary against stable; nil when a
	// check before the test decided the classification.
	Test *WilcoxonResult
	// Band is Tolerance * |Test.Estimate|: how far beyond zero the
	// interval had to lie.
	Band float64
}

// Classify compares a metric's canary values with its stable values the way
// Kayenta's Mann-Whitney classifier does (see analysis.md section 1.4).
func Classify(stable, canary []float64, cfg MetricConfig) MetricResult {
	cfg = cfg.withDefaults()
	res := MetricResult{
		Name: cfg.Name, Groups: cfg.Groups, Muted: cfg.Muted,
		Effect: math.NaN(), MeanRatio: math.NaN(),
	}
	fail := func(class Classification, format string, args ...any) MetricResult {
		res.Classification, res.Reason = class, fmt.Sprintf(format, args...)
		return res
	}
	if err := cfg.validate(); err != nil {
		return fail(MetricError, "bad configuration: %v", err)
	}
	x, y := applyNaN(canary, cfg.NaNStrategy), applyNaN(stable, cfg.NaNStrategy)
	res.Canary, res.Stable = summarize(x), summarize(y)
	if slices.ContainsFunc(x, isInf) || slices.ContainsFunc(y, isInf) {
		return fail(MetricError, "values must be finite")
	}

	// Missing data. Replacing NaNs means the metric was asked to tolerate
	// gaps, so an empty side passes. Otherwise a metric that must have data
	// fails its groups (unless critical: then it takes the critical path),
	// and any other is Nodata, which fails the canary if the metric is
	// critical.
	if len(x) == 0 || len(y) == 0 {
		switch {
		case cfg.NaNStrategy == NaNReplace:
			return fail(MetricPass, "no data; NaNs are replaced, so an empty side passes")
		case cfg.MustHaveData && !cfg.Critical:
			return fail(MetricNoDataFail, "no data for the canary or the stable side, and the metric must have data")
		}
		res.Critical = cfg.Critical
		return fail(MetricNoData, "no data for the canary or the stable side")
	}
	res.MeanRatio = meanRatio(x, y)

	// Identical data, or one value everywhere, cannot show a change.
	if sameMultiset(x, y) {
		return fail(MetricPass, "canary and stable values are identical")
	}
	if isConstant(x) && isConstant(y) && x[0] == y[0] {
		return fail(MetricPass, "every value is the same")
	}
	// Each side constant but different: every rank is tied within a side
	// and the interval cannot be built, so Kayenta adds Gaussian noise of
	// sd |value| * 1e-5. A fixed seed keeps the verdict reproducible.
	if isConstant(x) && isConstant(y) {
		rng := rand.New(rand.NewPCG(1, 2))
		x, y = jitter(x, rng), jitter(y, rng)
	}

	t, err := WilcoxonTest(x, y, WilcoxonOptions{ConfLevel: cfg.ConfLevel, Method: MethodNormal})
	if err != nil {
		// Kayenta records a failed test as Error and does not mark it
		// critical, so it lowers no score.
		return fail(MetricError, "rank-sum test: %v", err)
	}
	res.Test = &t
	// Kayenta ports only R's normal-approximation branch, so the judge uses
	// it at every sample size; the exact interval would also move in coarse
	// steps of achievable level on the small samples a canary yields.
	res.Effect = res.MeanRatio
	if cfg.Effect.Measure == CLES {
		res.Effect = t.W / float64(len(x)*len(y))
	}
	res.Band = cfg.Tolerance * math.Abs(t.Estimate)
	return decide(res, cfg)
}

// decide applies Kayenta's rule: a metric is High when a bad increase is
// configured, the whole interval of the shift lies above +Band (so it
// excludes zero and clears a quarter of the estimated shift), and the effect
// reaches the allowed increase; Low is the mirror image. A NaN effect cannot
// veto. A critical metric fails the canary only when its effect also reaches
// the critical threshold; below it, it is an ordinary High or Low.
func decide(res MetricResult, cfg MetricConfig) MetricResult {
	e, ci := res.Effect, res.Test.ConfInt
	nan := math.IsNaN(e)
	switch {
	case cfg.Direction != Decrease && ci[0] > res.Band && (nan || e >= cfg.Effect.AllowedIncrease):
		res.Classification = MetricHigh
		res.Critical = cfg.Critical && (nan || e >= cfg.Effect.CriticalIncrease)
		res.Reason = fmt.Sprintf("the canary is higher: the shift's interval [%.6g, %.6g] lies above %.6g", ci[0], ci[1], res.Band)
	case cfg.Direction != Increase && ci[1] < -res.Band && (nan || e <= cfg.Effect.AllowedDecrease):
		res.Classification = MetricLow
		res.Critical = cfg.Critical && (nan || e <= cfg.Effect.CriticalDecrease)
		res.Reason = fmt.Sprintf("the canary is lower: the shift's interval [%.6g, %.6g] lies below %.6g", ci[0], ci[1], -res.Band)
	default:
		res.Classification = MetricPass
		res.Reason = "no meaningful change in the failing direction"
	}
	return res
}

func applyNaN(v []float64, s NaNStrategy) []float64 {
	out := make([]float64, 0, len(v))
	for _, x := range v {
		if math.IsNaN(x) {
			if s == NaNRemove {
				continue
			}
			x = 0
		}
		out = append(out, x)
	}
	return out
}

func summarize(v []float64) SeriesSummary {
	return SeriesSummary{Count: len(v), Mean: mean(v)}
}

func mean(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := 0.0
	for _, x := range v {
		s += x
	}
	return s / float64(len(v))
}

func meanRatio(x, y []float64) float64 {
	mx, my := mean(x), mean(y)
	if mx == 0 || my == 0 {
		return math.NaN()
	}
	return mx / my
}

func isInf(v float64) bool { return math.IsInf(v, 0) }

func sameMultiset(x, y []float64) bool {
	if len(x) != len(y) {
		return false
	}
	a, b := slices.Clone(x), slices.Clone(y)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

func jitter(v []float64, rng *rand.Rand) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = x + rng.NormFloat64()*math.Abs(x)*1e-5
	}
	return out
}
