package stats

import (
	"math"
	"math/rand/v2"
	"testing"
)

// binomial draws from Binomial(n, p) by skipping geometric gaps between
// events, which costs about n*p draws instead of n.
func binomial(rng *rand.Rand, n uint64, p float64) uint64 {
	if p <= 0 {
		return 0
	}
	if p >= 1 {
		return n
	}
	logq := math.Log1p(-p)
	var events uint64
	pos := 0.0
	for {
		pos += math.Floor(math.Log(1-rng.Float64())/logq) + 1
		if pos > float64(n) {
			return events
		}
		events++
	}
}

// stream describes simulated traffic: per look, canaryPerLook and
// stablePerLook requests, with error rates given per look (so they can
// drift).
type stream struct {
	looks                        int
	canaryPerLook, stablePerLook uint64
	canaryRate, stableRate       func(look int) float64
}

// feed draws one simulated stream's cumulative counts (canary requests,
// canary events, stable requests, stable events) look by look and hands
// each to observe, until observe returns true or the looks run out; it
// returns the canary requests seen by then.
func (s stream) feed(rng *rand.Rand, observe func(c [4]uint64) (done bool)) uint64 {
	var c [4]uint64
	for look := range s.looks {
		c[0] += s.canaryPerLook
		c[1] += binomial(rng, s.canaryPerLook, s.canaryRate(look))
		c[2] += s.stablePerLook
		c[3] += binomial(rng, s.stablePerLook, s.stableRate(look))
		if observe(c) {
			break
		}
	}
	return c[0]
}

// run feeds one simulated stream to a fresh test, looking after every batch,
// and returns the decision and the canary requests seen when it was made.
func (s stream) run(t *testing.T, rng *rand.Rand, cfg RateConfig) (RateDecision, uint64) {
	rt, err := NewRateTest(cfg)
	if err != nil {
		t.Fatal(err)
	}
	n := s.feed(rng, func(c [4]uint64) bool {
		if err := rt.Observe(c[0], c[1], c[2], c[3]); err != nil {
			t.Fatal(err)
		}
		return rt.Decision() != RateUndecided
	})
	return rt.Decision(), n
}

func constRate(p float64) func(int) float64 { return func(int) float64 { return p } }

// falseAlarmBound is the most false decisions allowed in n simulated
// streams: alpha plus three binomial standard errors, so a correct test fails
// this with probability about 0.1% (and the seeds are fixed anyway). The test
// is conservative in practice, since a stream is only looked at in batches:
// at alpha = 0.01 it errs in about 0.3% of streams.
func falseAlarmBound(alpha float64, n int) int {
	return int(float64(n) * (alpha + 3*math.Sqrt(alpha*(1-alpha)/float64(n))))
}

func TestRateTestFalseAlarms(t *testing.T) {
	// Fluctuating error rates, shared by both sides within a batch.
	drift := func(look int) float64 { return 0.005 + 0.05*float64(look%5) }
	cases := []struct {
		name    string
		streams int
		s       stream
		wrong   RateDecision // the decision that would be a false alarm
	}{
		{"equal 2%, even split", 2000, stream{40, 250, 250, constRate(0.02), constRate(0.02)}, ""},
		{"equal 1%, 5% canary traffic", 1000, stream{40, 50, 950, constRate(0.01), constRate(0.01)}, ""},
		{"equal but drifting rates", 1000, stream{40, 100, 400, drift, drift}, ""},
		// Only Worse is wrong here: the canary really is better.
		{"canary better: never worse", 1000, stream{40, 250, 250, constRate(0.02), constRate(0.025)}, RateWorse},
	}
	rng := rand.New(rand.NewPCG(7, 11))
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			wrong := 0
			for range c.streams {
				d, _ := c.s.run(t, rng, RateConfig{})
				if (c.wrong == "" && d != RateUndecided) || d == c.wrong {
					wrong++
				}
			}
			bound := falseAlarmBound(DefaultRateAlpha, c.streams)
			t.Logf("%d false decisions in %d streams (bound %d)", wrong, c.streams, bound)
			if wrong > bound {
				t.Fatalf("%d false decisions in %d streams, more than %d", wrong, c.streams, bound)
			}
		})
	}
}

func TestRateTestDetectsRegression(t *testing.T) {
	// Errors going from 1% to 6% (+5 percentage points), looked at every
	// 50 canary requests, with even traffic or a 5% canary.
	cases := []struct {
		name string
		s    stream
	}{
		{"even split", stream{40, 50, 50, constRate(0.06), constRate(0.01)}},
		{"5% canary traffic", stream{40, 50, 950, constRate(0.06), constRate(0.01)}},
	}
	rng := rand.New(rand.NewPCG(3, 5))
	const streams = 500
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			worse, late := 0, 0
			for range streams {
				d, n := c.s.run(t, rng, RateConfig{})
				if d == RateBetter {
					t.Fatalf("decided Better on a regression after %d canary requests", n)
				}
				if d == RateWorse {
					worse++
					if n > 1000 {
						late++
					}
				}
			}
			t.Logf("%d of %d streams decided Worse, %d after 1000 canary requests", worse, streams, late)
			// With 2000 canary requests per stream nearly every stream
			// must catch the regression, and most within the first 1000.
			if worse < streams*99/100 {
				t.Fatalf("only %d of %d streams detected the regression", worse, streams)
			}
			if late > streams/20 {
				t.Fatalf("%d of %d streams needed more than 1000 canary requests", late, streams)
			}
		})
	}
}

func TestRateTestDetectsImprovement(t *testing.T) {
	s := stream{40, 100, 100, constRate(0.01), constRate(0.06)}
	d, n := s.run(t, rand.New(rand.NewPCG(1, 1)), RateConfig{})
	if d != RateBetter {
		t.Fatalf("decision %s after %d canary requests, want Better", d, n)
	}
}

func TestRateTestLatchesDecision(t *testing.T) {
	rt, err := NewRateTest(RateConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if err := rt.Observe(1000, 60, 1000, 10); err != nil {
		t.Fatal(err)
	}
	if rt.Decision() != RateWorse {
		t.Fatalf("decision %s, want Worse; status %+v", rt.Decision(), rt.Status())
	}
	// Much more data in which the canary looks better cannot undo it.
	if err := rt.Observe(100000, 100, 100000, 5000); err != nil {
		t.Fatal(err)
	}
	st := rt.Status()
	if st.Decision != RateWorse || st.CanaryN != 100000 || st.StableEvents != 5000 {
		t.Fatalf("status %+v, want Worse with the new counts", st)
	}
}

func TestRateTestUndecidedWithoutEvidence(t *testing.T) {
	rt, err := NewRateTest(RateConfig{Alpha: 0.05, MixtureSD: 0.5})
	if err != nil {
		t.Fatal(err)
	}
	st := rt.Status()
	if st.Decision != RateUndecided || !math.IsNaN(st.CanaryRate) || st.LogEvidence != 0 {
		t.Fatalf("fresh status %+v", st)
	}
	// Requests without events carry no evidence, and neither does a batch
	// that adds requests to one side only: conditioned on its events, the
	// canary's share of them is fixed. Counts of both sides should
	// therefore be read at the same moment.
	for _, c := range [][4]uint64{{100, 0, 100, 0}, {200, 50, 100, 0}, {200, 50, 300, 0}} {
		if err := rt.Observe(c[0], c[1], c[2], c[3]); err != nil {
			t.Fatal(err)
		}
	}
	st = rt.Status()
	if st.Decision != RateUndecided || st.CanaryRate != 0.25 || st.LogEvidence != 0 || st.LogThreshold != math.Log(20) {
		t.Fatalf("status %+v", st)
	}
	if err := rt.Observe(300, 60, 400, 0); err != nil {
		t.Fatal(err)
	}
	if st = rt.Status(); st.LogEvidence <= 0 {
		t.Fatalf("10 canary errors against none in a shared batch should build evidence, got %v", st.LogEvidence)
	}
}

func TestRateTestRefusesBadCounts(t *testing.T) {
	rt, err := NewRateTest(RateConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if err := rt.Observe(100, 5, 100, 3); err != nil {
		t.Fatal(err)
	}
	before := rt.Status()
	for _, c := range [][4]uint64{
		{90, 5, 100, 3},    // canary requests went down
		{100, 4, 100, 3},   // canary events went down
		{100, 5, 100, 2},   // stable events went down
		{100, 101, 200, 3}, // more events than requests
		{200, 5, 100, 101},
	} {
		if err := rt.Observe(c[0], c[1], c[2], c[3]); err == nil {
			t.Errorf("Observe%v accepted", c)
		}
	}
	if after := rt.Status(); after != before {
		t.Fatalf("refused observations changed the state: %+v, was %+v", after, before)
	}
}

func TestNewRateTestRefusesBadConfig(t *testing.T) {
	for _, c := range []RateConfig{{Alpha: 1}, {Alpha: -0.1}, {Alpha: math.NaN()}, {MixtureSD: -1}, {MixtureSD: math.Inf(1)}} {
		if _, err := NewRateTest(c); err == nil {
			t.Errorf("NewRateTest(%+v) accepted", c)
		}
	}
}
