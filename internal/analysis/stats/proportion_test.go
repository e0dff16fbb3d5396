package stats

import (
	"fmt"
	"math"
	"strings"
	"testing"
)

// proportionCase is a two-proportion test to run against R's prop.test.
type proportionCase struct {
	name           string
	canary, stable Proportion
	conf           float64
	want           ProportionVerdict
}

var proportionCases = []proportionCase{
	{"canary converts more", Proportion{130, 1000}, Proportion{100, 1000}, 0.95, ProportionBetter},
	{"canary converts less", Proportion{100, 1000}, Proportion{130, 1000}, 0.95, ProportionWorse},
	{"not significant at 95%", Proportion{120, 1000}, Proportion{100, 1000}, 0.95, ProportionNoDifference},
	{"significant only at 80%", Proportion{120, 1000}, Proportion{100, 1000}, 0.80, ProportionBetter},
	{"equal proportions", Proportion{500, 5000}, Proportion{500, 5000}, 0.95, ProportionNoDifference},
	{"equal proportions, unequal sizes", Proportion{250, 2500}, Proportion{500, 5000}, 0.99, ProportionNoDifference},
	{"no conversions at all", Proportion{0, 1000}, Proportion{0, 1000}, 0.95, ProportionNotEnoughData},
	{"everyone converts", Proportion{1000, 1000}, Proportion{1000, 1000}, 0.95, ProportionNotEnoughData},
	{"no conversions on the canary", Proportion{0, 500}, Proportion{12, 500}, 0.95, ProportionWorse},
	{"too few conversions", Proportion{1, 500}, Proportion{3, 500}, 0.95, ProportionNotEnoughData},
	{"one trial a side", Proportion{0, 1}, Proportion{1, 1}, 0.95, ProportionNotEnoughData},
	{"tiny samples", Proportion{1, 2}, Proportion{1, 3}, 0.95, ProportionNotEnoughData},
	{"ten a side", Proportion{3, 10}, Proportion{7, 10}, 0.95, ProportionNoDifference},
	{"all against none", Proportion{50, 50}, Proportion{0, 50}, 0.95, ProportionBetter},
	{"near one", Proportion{9999, 10000}, Proportion{9990, 10000}, 0.95, ProportionBetter},
	{"too few failures", Proportion{9999, 10000}, Proportion{9995, 10000}, 0.95, ProportionNotEnoughData},
	{"near one, larger", Proportion{99900, 100000}, Proportion{99850, 100000}, 0.95, ProportionBetter},
	{"98% level", Proportion{48, 1000}, Proportion{52, 1000}, 0.98, ProportionNoDifference},
	{"tiny p-value", Proportion{1200, 10000}, Proportion{1000, 10000}, 0.95, ProportionBetter},
	{"huge samples", Proportion{1001000, 10000000}, Proportion{1000000, 10000000}, 0.95, ProportionNoDifference},
	{"huge samples, small lift", Proportion{123456789, 1000000000}, Proportion{123400000, 1000000000}, 0.95, ProportionBetter},
	{"rare events, huge samples", Proportion{10, 1000000}, Proportion{22, 1000000}, 0.95, ProportionWorse},
	{"unequal split", Proportion{60, 500}, Proportion{900, 9500}, 0.95, ProportionNoDifference},
}

func TestProportionTestMatchesR(t *testing.T) {
	lines := make([]string, len(proportionCases))
	for i, c := range proportionCases {
		lines[i] = fmt.Sprintf("%d %d %d %d %v", c.canary.Successes, c.canary.Trials, c.stable.Successes, c.stable.Trials, c.conf)
	}
	rows := askR(t, "prop", lines)
	names := []string{"p-value", "interval low", "interval high", "X-squared", "canary rate", "stable rate"}
	for i, c := range proportionCases {
		t.Run(c.name, func(t *testing.T) {
			r, err := ProportionTest(c.canary, c.stable, c.conf)
			if err != nil {
				t.Fatal(err)
			}
			got := []float64{r.PValue, r.ConfInt[0], r.ConfInt[1], r.Z * r.Z, r.CanaryRate, r.StableRate}
			compareToR(t, names, got, rows[i])
			if r.Verdict != c.want || r.Reason == "" {
				t.Errorf("verdict %s (%s), want %s", r.Verdict, r.Reason, c.want)
			}
			if d := r.CanaryRate - r.StableRate; d != r.Difference || r.ConfLevel != c.conf {
				t.Errorf("difference %v, level %v; want %v and %v", r.Difference, r.ConfLevel, d, c.conf)
			}
		})
	}
}

func TestProportionTestDefaultsAndRefusals(t *testing.T) {
	r, err := ProportionTest(Proportion{130, 1000}, Proportion{100, 1000}, 0)
	if err != nil || r.ConfLevel != DefaultProportionConfLevel || r.Verdict != ProportionBetter {
		t.Fatalf("default level: %+v, %v", r, err)
	}
	if r.ConfInt[0] > r.Difference || r.Difference > r.ConfInt[1] || r.Z <= 0 {
		t.Fatalf("interval %v around %v, z %v", r.ConfInt, r.Difference, r.Z)
	}
	r, err = ProportionTest(Proportion{0, 0}, Proportion{10, 100}, 0)
	if err != nil || r.Verdict != ProportionNotEnoughData || !math.IsNaN(r.PValue) || !strings.Contains(r.Reason, "no trials") {
		t.Fatalf("a side without trials: %+v, %v", r, err)
	}
	for _, c := range []struct {
		canary, stable Proportion
		conf           float64
		want           string
	}{
		{Proportion{11, 10}, Proportion{1, 10}, 0.95, "canary has more successes than trials (11/10)"},
		{Proportion{1, 10}, Proportion{5, 4}, 0.95, "stable has more successes than trials (5/4)"},
		{Proportion{1, 10}, Proportion{1, 10}, 95, "confidence level 95 is not in (0, 1)"},
		{Proportion{1, 10}, Proportion{1, 10}, math.NaN(), "confidence level NaN"},
	} {
		if _, err := ProportionTest(c.canary, c.stable, c.conf); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ProportionTest(%v, %v, %v): error %v, want %q", c.canary, c.stable, c.conf, err, c.want)
		}
	}
}

// srmCase is a sample ratio check to run against R's chisq.test.
type srmCase struct {
	name    string
	counts  []uint64
	planned []float64
	broken  bool // at the default alpha
}

var srmCases = []srmCase{
	{"5000/5200 at 50/50", []uint64{5000, 5200}, []float64{50, 50}, false},
	{"exact 50/50", []uint64{5000, 5000}, []float64{0.5, 0.5}, false},
	{"10000/10500 at 50/50", []uint64{10000, 10500}, []float64{50, 50}, true},
	{"a lost half", []uint64{10000, 12000}, []float64{1, 1}, true},
	{"90/10 as planned", []uint64{9000, 1000}, []float64{90, 10}, false},
	{"90/10 drifting", []uint64{9100, 900}, []float64{90, 10}, true},
	{"few users", []uint64{3, 9}, []float64{50, 50}, false},
	{"three variants, small statistic", []uint64{1, 2, 3}, []float64{1, 1, 1}, false},
	{"three variants", []uint64{10, 20, 30}, []float64{1, 1, 1}, false},
	{"four variants, one heavy", []uint64{1000, 1000, 1000, 1200}, []float64{25, 25, 25, 25}, true},
	{"eight variants", []uint64{120, 130, 110, 125, 118, 90, 140, 127}, []float64{1, 1, 1, 1, 1, 1, 1, 1}, false},
	{"uneven plan", []uint64{2000, 3100, 4900}, []float64{20, 30, 50}, false},
	{"millions", []uint64{5002000, 4998000}, []float64{50, 50}, false},
}

func TestSampleRatioTestMatchesR(t *testing.T) {
	lines := make([]string, len(srmCases))
	for i, c := range srmCases {
		counts, planned := make([]string, len(c.counts)), make([]string, len(c.planned))
		for j := range c.counts {
			counts[j], planned[j] = fmt.Sprint(c.counts[j]), fmt.Sprint(c.planned[j])
		}
		lines[i] = strings.Join(counts, ",") + ";" + strings.Join(planned, ",")
	}
	rows := askR(t, "srm", lines)
	for i, c := range srmCases {
		t.Run(c.name, func(t *testing.T) {
			r, err := SampleRatioTest(c.counts, c.planned, 0)
			if err != nil {
				t.Fatal(err)
			}
			compareToR(t, []string{"X-squared", "df", "p-value"}, []float64{r.ChiSquare, float64(r.DF), r.PValue}, rows[i])
			if r.Mismatch != c.broken {
				t.Errorf("mismatch %v at p = %v, want %v", r.Mismatch, r.PValue, c.broken)
			}
		})
	}
}
