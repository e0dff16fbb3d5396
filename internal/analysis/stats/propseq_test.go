package stats

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// runProportions feeds one simulated stream of users (requests) and
// conversions (events) to a fresh sequential proportion test, looking after
// every batch, and returns the verdict and the canary users seen when it was
// made. It also reports whether the fixed-horizon z-test, looked at after
// every batch in the same way, would have declared a winner: the peeking
// the sequential test exists to make safe.
func (s stream) runProportions(t *testing.T, rng *rand.Rand) (v ProportionVerdict, n uint64, peekedWinner bool) {
	st, err := NewProportionSequentialTest(ProportionSequentialConfig{})
	if err != nil {
		t.Fatal(err)
	}
	n = s.feed(rng, func(c [4]uint64) bool {
		canary, stable := Proportion{Successes: c[1], Trials: c[0]}, Proportion{Successes: c[3], Trials: c[2]}
		if err := st.Observe(canary, stable); err != nil {
			t.Fatal(err)
		}
		z, err := ProportionTest(canary, stable, 0)
		if err != nil {
			t.Fatal(err)
		}
		peekedWinner = peekedWinner || z.Verdict == ProportionBetter || z.Verdict == ProportionWorse
		return st.Status().Verdict != ProportionUndecided
	})
	s2 := st.Status()
	if s2.Verdict != ProportionUndecided && !(s2.PValue <= DefaultProportionSequentialAlpha) {
		t.Fatalf("decided %s with an always-valid p-value of %v", s2.Verdict, s2.PValue)
	}
	return s2.Verdict, n, peekedWinner
}

// falseWinnerCases are experiments without a winner in the wrong direction:
// every Better or Worse verdict (or, with wrong set, that one) is false.
var falseWinnerCases = []struct {
	name    string
	streams int
	s       stream
	wrong   ProportionVerdict
}{
	{"equal 10%, even split", 1000, stream{50, 200, 200, constRate(0.10), constRate(0.10)}, ""},
	{"equal 3%, 10% canary", 500, stream{50, 40, 360, constRate(0.03), constRate(0.03)}, ""},
	// Conversion swinging with the time of day, on both sides.
	{"equal but drifting", 500, stream{50, 200, 200, dayCycle, dayCycle}, ""},
	// Only Better is wrong here: the canary really is worse.
	{"canary worse: never better", 500, stream{50, 200, 200, constRate(0.09), constRate(0.10)}, ProportionBetter},
}

func dayCycle(look int) float64 { return 0.08 + 0.04*math.Sin(float64(look)/4) }

func TestProportionSequentialFalseWinners(t *testing.T) {
	rng := rand.New(rand.NewPCG(14, 2))
	for _, c := range falseWinnerCases {
		t.Run(c.name, func(t *testing.T) {
			wrong, peeked := 0, 0
			for range c.streams {
				v, _, p := c.s.runProportions(t, rng)
				if (c.wrong == "" && v != ProportionUndecided) || v == c.wrong {
					wrong++
				}
				if p {
					peeked++
				}
			}
			bound := falseAlarmBound(DefaultProportionSequentialAlpha, c.streams)
			t.Logf("%d false winners in %d streams of %d looks (bound %d); a z-test peeked at as often: %d",
				wrong, c.streams, c.s.looks, bound, peeked)
			if wrong > bound {
				t.Fatalf("%d false winners in %d streams, more than %d", wrong, c.streams, bound)
			}
			// The simulation can see the problem: the fixed-horizon test,
			// looked at every batch, names far more false winners.
			if c.wrong == "" && peeked < 3*bound {
				t.Fatalf("peeking at the z-test named only %d winners in %d streams; the simulation is too weak to show peeking", peeked, c.streams)
			}
		})
	}
}

func TestProportionSequentialFindsARealDifference(t *testing.T) {
	// Conversion from 10% to 12%, looked at every 500 users a side, for up
	// to 40,000 users a side; the mirror image; and a lift of one point,
	// looked at every 1,000 users, for up to 100,000.
	cases := []struct {
		name        string
		s           stream
		want, never ProportionVerdict
	}{
		{"canary better", stream{80, 500, 500, constRate(0.12), constRate(0.10)}, ProportionBetter, ProportionWorse},
		{"canary worse", stream{80, 500, 500, constRate(0.10), constRate(0.12)}, ProportionWorse, ProportionBetter},
		{"one point better", stream{100, 1000, 1000, constRate(0.11), constRate(0.10)}, ProportionBetter, ProportionWorse},
	}
	rng := rand.New(rand.NewPCG(12, 10))
	const streams = 200
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			found, total := 0, uint64(0)
			for range streams {
				v, n, _ := c.s.runProportions(t, rng)
				if v == c.never {
					t.Fatalf("verdict %s after %d canary users", v, n)
				}
				if v == c.want {
					found++
					total += n
				}
			}
			t.Logf("%d of %d streams found %s, after %d canary users on average", found, streams, c.want, total/uint64(max(found, 1)))
			if found < streams*95/100 {
				t.Fatalf("only %d of %d streams found the difference", found, streams)
			}
		})
	}
}

func TestProportionSequentialStatus(t *testing.T) {
	st, err := NewProportionSequentialTest(ProportionSequentialConfig{Alpha: 0.01, MixtureSD: 0.5})
	if err != nil {
		t.Fatal(err)
	}
	s := st.Status()
	if s.Verdict != ProportionUndecided || s.PValue != 1 || !math.IsNaN(s.Difference) || s.LogThreshold != math.Log(100) {
		t.Fatalf("fresh status %+v", s)
	}
	if err := st.Observe(Proportion{300, 1000}, Proportion{100, 1000}); err != nil {
		t.Fatal(err)
	}
	s = st.Status()
	if s.Verdict != ProportionBetter || s.PValue > 0.01 || math.Abs(s.Difference-0.2) > 1e-12 || s.Canary.Trials != 1000 {
		t.Fatalf("status after a clear lift %+v", s)
	}
	// The verdict holds whatever comes later, and the p-value never grows:
	// equal proportions from now on lower the evidence but not the
	// largest evidence seen.
	if err := st.Observe(Proportion{10300, 101000}, Proportion{10100, 101000}); err != nil {
		t.Fatal(err)
	}
	if later := st.Status(); later.Verdict != ProportionBetter || later.PValue != s.PValue || later.LogEvidence >= s.LogEvidence {
		t.Fatalf("status after contrary data %+v, before %+v", later, s)
	}
	for _, c := range []struct {
		canary, stable Proportion
		want           string
	}{
		{Proportion{10, 5}, Proportion{10100, 101000}, "more events than trials"},
		{Proportion{10300, 100999}, Proportion{10100, 101000}, "cumulative counts went down"},
	} {
		if err := st.Observe(c.canary, c.stable); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Observe(%v, %v): %v, want %q", c.canary, c.stable, err, c.want)
		}
	}
	for _, cfg := range []ProportionSequentialConfig{{Alpha: 1}, {MixtureSD: -1}, {Alpha: math.NaN()}} {
		if _, err := NewProportionSequentialTest(cfg); err == nil || !strings.HasPrefix(err.Error(), "sequential proportion test: ") {
			t.Errorf("config %+v: error %v", cfg, err)
		}
	}
}
