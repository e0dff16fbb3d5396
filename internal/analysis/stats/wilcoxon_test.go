package stats

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"strings"
	"testing"
)

// rNum is a number as gen_wilcox.R writes it: a JSON number, or the string
// "Inf" or "-Inf" for an open end of a one-sided interval.
type rNum float64

func (n *rNum) UnmarshalJSON(b []byte) error {
	switch string(b) {
	case `"Inf"`:
		*n = rNum(math.Inf(1))
	case `"-Inf"`:
		*n = rNum(math.Inf(-1))
	default:
		var f float64
		if err := json.Unmarshal(b, &f); err != nil {
			return err
		}
		*n = rNum(f)
	}
	return nil
}

type rCase struct {
	Name        string    `json:"name"`
	X           []float64 `json:"x"`
	Y           []float64 `json:"y"`
	Alternative string    `json:"alternative"`
	ConfLevel   float64   `json:"conf_level"`
	Exact       *bool     `json:"exact"`
	Method      string    `json:"method"`
	Statistic   float64   `json:"statistic"`
	PValue      float64   `json:"p_value"`
	Estimate    float64   `json:"estimate"`
	ConfInt     [2]rNum   `json:"conf_int"`
	Achieved    float64   `json:"achieved_conf_level"`
}

func loadRCases(t *testing.T) []rCase {
	t.Helper()
	b, err := os.ReadFile("testdata/wilcox_vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Cases []rCase `json:"cases"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Cases) < 20 {
		t.Fatalf("only %d R cases in testdata", len(f.Cases))
	}
	return f.Cases
}

func (c rCase) options(t *testing.T) WilcoxonOptions {
	t.Helper()
	opt := WilcoxonOptions{ConfLevel: c.ConfLevel}
	switch c.Alternative {
	case "two.sided":
		opt.Alternative = TwoSided
	case "greater":
		opt.Alternative = Greater
	case "less":
		opt.Alternative = Less
	default:
		t.Fatalf("unknown alternative %q", c.Alternative)
	}
	switch {
	case c.Exact == nil:
		opt.Method = MethodAuto
	case *c.Exact:
		opt.Method = MethodExact
	default:
		opt.Method = MethodNormal
	}
	return opt
}

// Tolerances against R. On amd64 every value agrees with R to within a few
// ulps (the largest difference seen is 4e-15), because the closed forms are
// the same and the normal-approximation roots are found by the same zeroin
// steps R takes. 1e-9 leaves room for another summation order or a fused
// multiply-add on other architectures; ciTol is relative to the larger of
// the value and the data's range, since a root on a jump of the step
// function moves with the data's scale, not the root's size.
const (
	relTol = 1e-9
	ciTol  = 1e-9
)

func close(got, want, tol, scale float64) bool {
	if math.IsInf(want, 0) {
		return got == want
	}
	return math.Abs(got-want) <= tol*math.Max(math.Abs(want), scale)
}

func TestWilcoxonMatchesR(t *testing.T) {
	for _, c := range loadRCases(t) {
		t.Run(c.Name, func(t *testing.T) {
			got, err := WilcoxonTest(c.X, c.Y, c.options(t))
			if err != nil {
				t.Fatal(err)
			}
			if wantExact := strings.Contains(c.Method, "exact"); got.Exact != wantExact {
				t.Errorf("exact = %v, R used %q", got.Exact, c.Method)
			}
			scale := dataScale(c.X, c.Y)
			check := func(what string, got, want, tol, scale float64) {
				t.Helper()
				if !close(got, want, tol, scale) {
					t.Errorf("%s = %.17g, R %.17g (diff %.3g)", what, got, want, got-want)
				}
			}
			check("W", got.W, c.Statistic, relTol, 0)
			check("p-value", got.PValue, c.PValue, relTol, 0)
			check("estimate", got.Estimate, c.Estimate, ciTol, scale)
			check("conf.int lower", got.ConfInt[0], float64(c.ConfInt[0]), ciTol, scale)
			check("conf.int upper", got.ConfInt[1], float64(c.ConfInt[1]), ciTol, scale)
			check("conf.level", got.ConfLevel, c.Achieved, relTol, 0)
		})
	}
}

// dataScale is the spread of the pooled data, the natural unit for absolute
// errors of a shift.
func dataScale(x, y []float64) float64 {
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, v := range append(append([]float64{}, x...), y...) {
		lo, hi = math.Min(lo, v), math.Max(hi, v)
	}
	return hi - lo
}

func TestWilcoxonRejects(t *testing.T) {
	cases := []struct {
		name string
		x, y []float64
		opt  WilcoxonOptions
		is   error
	}{
		{"empty x", nil, []float64{1}, WilcoxonOptions{}, nil},
		{"NaN", []float64{1, math.NaN()}, []float64{1, 2}, WilcoxonOptions{}, nil},
		{"Inf", []float64{1, math.Inf(1)}, []float64{1, 2}, WilcoxonOptions{}, nil},
		{"level 1", []float64{1, 2}, []float64{3, 4}, WilcoxonOptions{ConfLevel: 1}, nil},
		{"bad alternative", []float64{1, 2}, []float64{3, 4}, WilcoxonOptions{Alternative: 7}, nil},
		// R stops here too: the statistic has no spread at the shift
		// where the two constants meet.
		{"both constant", []float64{5, 5, 5}, []float64{6, 6}, WilcoxonOptions{}, ErrAllTied},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := WilcoxonTest(c.x, c.y, c.opt)
			if err == nil {
				t.Fatal("no error")
			}
			if c.is != nil && !errors.Is(err, c.is) {
				t.Fatalf("error %v, want %v", err, c.is)
			}
		})
	}
}

func TestQnorm(t *testing.T) {
	// Values from R's qnorm.
	for _, c := range []struct{ p, want float64 }{
		{0.01, -2.3263478740408408},
		{0.99, 2.3263478740408408},
		{0.025, -1.9599639845400538},
		{1e-10, -6.3613409024040557},
		{0.5, 0},
	} {
		if got := qnorm(c.p); math.Abs(got-c.want) > 1e-14*math.Max(1, math.Abs(c.want)) {
			t.Errorf("qnorm(%v) = %.17g, want %.17g", c.p, got, c.want)
		}
	}
}

func TestRank(t *testing.T) {
	got := rank([]float64{3, 1, 3, 2, 3})
	want := []float64{4, 1, 4, 2, 4}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("rank = %v, want %v", got, want)
	}
}
