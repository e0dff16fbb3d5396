package stats

import (
	"math"
	"math/rand/v2"
	"testing"
)

// series returns n normal values of the given mean and sd from a fixed seed.
func series(seed uint64, n int, mean, sd float64) []float64 {
	rng := rand.New(rand.NewPCG(seed, 99))
	v := make([]float64, n)
	for i := range v {
		v[i] = mean + sd*rng.NormFloat64()
	}
	return v
}

// ramp returns 0, 1, ..., n-1 plus shift: evenly spread values whose rank
// test results are easy to reason about.
func ramp(n int, shift float64) []float64 {
	v := make([]float64, n)
	for i := range v {
		v[i] = float64(i) + shift
	}
	return v
}

func constant(n int, v float64) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = v
	}
	return out
}

func withNaNs(v []float64, every int) []float64 {
	out := append([]float64{}, v...)
	for i := 0; i < len(out); i += every {
		out[i] = math.NaN()
	}
	return out
}

// The series TestClassify compares: stable, and canaries slower, faster,
// the same, and slightly slower than it.
var (
	classifyStable   = series(1, 60, 100, 5)
	classifySlower   = series(2, 60, 130, 5) // +30%, far outside the noise
	classifyFaster   = series(3, 60, 70, 5)
	classifySame     = series(4, 60, 100, 5)
	classifySlightly = series(5, 60, 105, 1) // significant, but only +5%
	classifyNaNs     = []float64{math.NaN(), math.NaN()}
)

// classifications are pairs of series, each with the verdict Classify must reach.
var classifications = []struct {
	name           string
	stable, canary []float64
	cfg            MetricConfig
	want           Classification
	critical       bool
	tested         bool // whether the rank test ran
}{
	{"higher", classifyStable, classifySlower, MetricConfig{}, MetricHigh, false, true},
	{"lower", classifyStable, classifyFaster, MetricConfig{}, MetricLow, false, true},
	{"no change", classifyStable, classifySame, MetricConfig{}, MetricPass, false, true},
	{"higher but only decrease fails", classifyStable, classifySlower, MetricConfig{Direction: Decrease}, MetricPass, false, true},
	{"higher and increase fails", classifyStable, classifySlower, MetricConfig{Direction: Increase}, MetricHigh, false, true},
	{"lower but only increase fails", classifyStable, classifyFaster, MetricConfig{Direction: Increase}, MetricPass, false, true},
	{"lower and decrease fails", classifyStable, classifyFaster, MetricConfig{Direction: Decrease}, MetricLow, false, true},

	// The allowed change: +5% fails by default (ratio >= 1) but not
	// when 10% is allowed.
	{"small rise, default allowance", classifyStable, classifySlightly, MetricConfig{}, MetricHigh, false, true},
	{"small rise within allowance", classifyStable, classifySlightly, MetricConfig{Effect: EffectSize{AllowedIncrease: 1.1}}, MetricPass, false, true},
	{"drop within allowance", classifyStable, classifyFaster, MetricConfig{Effect: EffectSize{AllowedDecrease: 0.5}}, MetricPass, false, true},

	// The band: ramp+7 against ramp is significant at 98% (interval
	// [1.00006, 13], estimate 7) but the interval does not clear a
	// quarter of the estimate, 1.75; a tenth, 0.7, it clears.
	{"inside the band", ramp(30, 0), ramp(30, 7), MetricConfig{}, MetricPass, false, true},
	{"outside a narrower band", ramp(30, 0), ramp(30, 7), MetricConfig{Tolerance: 0.1}, MetricHigh, false, true},

	// Critical metrics fail the canary only past the critical effect.
	{"critical high", classifyStable, classifySlower, MetricConfig{Critical: true}, MetricHigh, true, true},
	{"critical high below critical effect", classifyStable, classifySlower, MetricConfig{Critical: true, Effect: EffectSize{CriticalIncrease: 1.5}}, MetricHigh, false, true},
	{"critical low", classifyStable, classifyFaster, MetricConfig{Critical: true}, MetricLow, true, true},
	{"critical pass", classifyStable, classifySame, MetricConfig{Critical: true}, MetricPass, false, true},

	// CLES: P(canary > stable) is about 1 for a big rise.
	{"cles high", classifyStable, classifySlower, MetricConfig{Effect: EffectSize{Measure: CLES}}, MetricHigh, false, true},
	{"cles high within allowance", classifyStable, classifySlightly, MetricConfig{Effect: EffectSize{Measure: CLES, AllowedIncrease: 0.999}}, MetricPass, false, true},

	// Checks before the test.
	{"identical", classifyStable, append([]float64{}, classifyStable...), MetricConfig{}, MetricPass, false, false},
	{"one value everywhere", constant(5, 3), constant(8, 3), MetricConfig{}, MetricPass, false, false},
	{"two constants get noise", constant(20, 100), constant(20, 120), MetricConfig{}, MetricHigh, false, true},
	{"zero against a constant", constant(20, 0), constant(20, 5), MetricConfig{}, MetricHigh, false, true},

	// Missing data.
	{"no canary data", classifyStable, classifyNaNs, MetricConfig{}, MetricNoData, false, false},
	{"no stable data", nil, classifySlower, MetricConfig{}, MetricNoData, false, false},
	{"no data, critical", classifyStable, nil, MetricConfig{Critical: true}, MetricNoData, true, false},
	{"no data, must have data", classifyStable, nil, MetricConfig{MustHaveData: true}, MetricNoDataFail, false, false},
	{"no data, must have data and critical", classifyStable, nil, MetricConfig{MustHaveData: true, Critical: true}, MetricNoData, true, false},
	{"no data, NaNs replaced", classifyStable, nil, MetricConfig{NaNStrategy: NaNReplace}, MetricPass, false, false},
	{"NaNs removed", classifyStable, withNaNs(classifySlower, 3), MetricConfig{}, MetricHigh, false, true},
	// Replaced, a canary that reported nothing reads as zeros.
	{"NaNs replaced by zero", classifyStable, withNaNs(classifySame, 1), MetricConfig{NaNStrategy: NaNReplace}, MetricLow, false, true},

	// Errors are never critical.
	{"infinite value", classifyStable, []float64{1, math.Inf(1)}, MetricConfig{Critical: true}, MetricError, false, false},
	{"bad config", classifyStable, classifySlower, MetricConfig{ConfLevel: 1.5}, MetricError, false, false},
}

func TestClassify(t *testing.T) {
	for _, c := range classifications {
		t.Run(c.name, func(t *testing.T) {
			c.cfg.Name = "latency"
			got := Classify(c.stable, c.canary, c.cfg)
			if got.Classification != c.want || got.Critical != c.critical || (got.Test != nil) != c.tested {
				t.Fatalf("got %s critical=%v tested=%v (%s), want %s critical=%v tested=%v",
					got.Classification, got.Critical, got.Test != nil, got.Reason, c.want, c.critical, c.tested)
			}
			if got.Name != "latency" || got.Reason == "" {
				t.Fatalf("result %+v lacks name or reason", got)
			}
		})
	}
}

func TestClassifyReportsNumbers(t *testing.T) {
	stable, canary := ramp(30, 0), ramp(30, 12)
	got := Classify(stable, canary, MetricConfig{})
	if got.Test == nil || got.Test.Estimate != 12 || got.Band != 3 {
		t.Fatalf("result %+v, want estimate 12 and band 3", got)
	}
	if want := 26.5 / 14.5; math.Abs(got.MeanRatio-want) > 1e-12 || got.Effect != got.MeanRatio {
		t.Fatalf("mean ratio %v, effect %v, want %v", got.MeanRatio, got.Effect, want)
	}
	if got.Test.ConfLevel != DefaultConfLevel || got.Test.Exact {
		t.Fatalf("test %+v: want Kayenta's 98%% normal-approximation interval", got.Test)
	}
	if got.Canary != (SeriesSummary{Count: 30, Mean: 26.5}) || got.Stable.Count != 30 {
		t.Fatalf("summaries %+v %+v", got.Canary, got.Stable)
	}
	// CLES is the share of pairs where the canary is higher, ties half.
	// Canary i+12 is not above stable j when j >= i+12: 18+17+...+1 = 171
	// pairs, 18 of them ties.
	cles := Classify(stable, canary, MetricConfig{Effect: EffectSize{Measure: CLES}})
	if want := (900 - 171 + 18/2.0) / 900; math.Abs(cles.Effect-want) > 1e-12 {
		t.Fatalf("CLES %v, want %v", cles.Effect, want)
	}
	// A zero mean leaves the ratio undefined, which cannot veto a change.
	zero := Classify(constant(10, 0), ramp(10, 50), MetricConfig{})
	if !math.IsNaN(zero.MeanRatio) || zero.Classification != MetricHigh {
		t.Fatalf("zero-mean stable: %+v", zero)
	}
}

func TestParseDirection(t *testing.T) {
	for _, d := range []Direction{Either, Increase, Decrease} {
		got, err := ParseDirection(d.String())
		if err != nil || got != d {
			t.Errorf("ParseDirection(%q) = %v, %v", d.String(), got, err)
		}
	}
	if _, err := ParseDirection("up"); err == nil {
		t.Error(`ParseDirection("up") accepted`)
	}
}
