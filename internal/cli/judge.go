package cli

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/pipit-dev/pipit/internal/analysis/stats"
	"github.com/pipit-dev/pipit/internal/spec"
)

func init() { register(newJudgeCmd) }

// judgeOptions are the flags of pipit judge.
type judgeOptions struct {
	stable, canary         string
	stableConv, canaryConv string // X/N, for the proportion test
	direction              string
	// confidence is --confidence; each test has its own default.
	confidence    float64
	allowedChange float64
	unit          string
	output        *outputFormat
	// set reports whether a flag was given on the command line.
	set func(flag string) bool
}

func newJudgeCmd(*globals) *cobra.Command {
	o := &judgeOptions{}
	cmd := &cobra.Command{
		Use:   "judge --stable FILE --canary FILE | --stable-conversions X/N --canary-conversions X/N",
		Short: "Compare a canary's metric series (as Kayenta does) or conversions with the stable's",
		Long: `judge compares two series of one metric, say a value per minute from the stable
version and from the canary, the way Kayenta's canary judge does. A Wilcoxon
rank-sum (Mann-Whitney) test gives the shift of the canary from the stable (the
Hodges-Lehmann estimate) and its confidence interval. The metric is High when the
whole interval lies above a quarter of the estimated shift and the canary's mean
has grown by more than the allowed change, Low in the mirror case, and Pass
otherwise; --direction says which change is bad. The score is what this one metric
would give a canary: 100 when it passes, 0 when it is High or Low or has no data;
75 and above passes, 50 and above is marginal.

Each FILE holds numbers either as a JSON array ([1.5, 2, null]) or one per line,
as a one-column CSV, optionally under a header line. NaN (or null) is a missing
point and is dropped. --unit names what the values are in (ms, %, req/s), shown
after the shift, its interval and the means.

With --stable-conversions and --canary-conversions instead, each X/N, judge
compares two proportions, X conversions out of N users, by the two-proportion
z-test (R's prop.test without continuity correction), at 95% confidence unless
told otherwise: the difference (canary - stable), its interval, the p-value and
a verdict either way, Better (the canary converts more), Worse, NoDifference, or
NotEnoughData when a side expects fewer than 5 conversions or non-conversions.

The verdict is printed; the exit code is 0 whatever it is, and 2 when an input
cannot be read.`,
		Example: `  pipit judge --stable stable.csv --canary canary.csv
  pipit judge --stable p99-stable.json --canary p99-canary.json --direction increase --allowed-change 0.1 --unit ms
  pipit judge --stable a.csv --canary b.csv -o json | jq .classification
  pipit judge --stable-conversions 100/1000 --canary-conversions 130/1000`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.set = cmd.Flags().Changed
			return o.run(cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.stable, "stable", "", "file with the stable version's values (required unless judging conversions)")
	f.StringVar(&o.canary, "canary", "", "file with the canary's values (required unless judging conversions)")
	f.StringVar(&o.stableConv, "stable-conversions", "", "the stable's conversions out of its users, X/N, instead of series")
	f.StringVar(&o.canaryConv, "canary-conversions", "", "the canary's conversions out of its users, X/N, instead of series")
	f.StringVar(&o.direction, "direction", "either", "the change that fails: increase, decrease or either")
	f.Float64Var(&o.confidence, "confidence", 0, fmt.Sprintf("confidence level of the interval, in (0, 1): by default %v for series, %v for conversions",
		stats.DefaultConfLevel, stats.DefaultProportionConfLevel))
	f.Float64Var(&o.allowedChange, "allowed-change", 0, "relative change of the mean to tolerate, in [0, 1): 0.1 lets the mean move 10% before a significant shift fails")
	f.StringVar(&o.unit, "unit", "", "what the values are in, such as ms, % or req/s, shown after them (default none)")
	o.output = addOutputFlag(cmd, "text")
	return cmd
}

func (o *judgeOptions) run(out io.Writer) error {
	if o.stableConv != "" || o.canaryConv != "" {
		return o.runConversions(out)
	}
	cfg, err := o.config()
	if err != nil {
		return err
	}
	stable, err := readSeries(o.stable)
	if err != nil {
		return BadInput(err)
	}
	canary, err := readSeries(o.canary)
	if err != nil {
		return BadInput(err)
	}
	res := stats.Classify(stable, canary, cfg)
	card, err := stats.Score([]stats.MetricResult{res}, stats.ScoreConfig{})
	if err != nil {
		return err
	}
	report := newJudgeReport(res, card, cfg.ConfLevel)
	report.Unit = o.unit
	return o.output.print(out, report, report.text)
}

// config checks the flags and turns them into a metric configuration.
func (o *judgeOptions) config() (stats.MetricConfig, error) {
	if o.stable == "" || o.canary == "" {
		return stats.MetricConfig{}, BadInputf("both --stable and --canary are required (or --stable-conversions and --canary-conversions)")
	}
	level, err := o.level(stats.DefaultConfLevel)
	if err != nil {
		return stats.MetricConfig{}, err
	}
	if !(o.allowedChange >= 0 && o.allowedChange < 1) {
		return stats.MetricConfig{}, BadInputf("--allowed-change %v: want a number in [0, 1)", o.allowedChange)
	}
	dir, err := stats.ParseDirection(o.direction)
	if err != nil {
		return stats.MetricConfig{}, BadInputf("--direction: %v", err)
	}
	return stats.MetricConfig{
		Name:      "metric",
		Direction: dir,
		ConfLevel: level,
		// Kayenta's effect gate is on the mean ratio: an allowed change
		// of 10% means a ratio of at least 1.1 for High, at most 0.9 for Low.
		Effect: stats.EffectSize{AllowedIncrease: 1 + o.allowedChange, AllowedDecrease: 1 - o.allowedChange},
	}, nil
}

// level returns --confidence when it was given, else the test's default
// def; a given level outside (0, 1) is refused.
func (o *judgeOptions) level(def float64) (float64, error) {
	if !o.set("confidence") {
		return def, nil
	}
	if !(o.confidence > 0 && o.confidence < 1) {
		return 0, BadInputf("--confidence %v: want a number between 0 and 1", o.confidence)
	}
	return o.confidence, nil
}

// runConversions judges --canary-conversions against --stable-conversions
// by the two-proportion test.
func (o *judgeOptions) runConversions(out io.Writer) error {
	for _, flag := range []string{"stable", "canary", "direction", "allowed-change"} {
		if o.set(flag) {
			return BadInputf("--%s is for series and cannot be combined with --stable-conversions and --canary-conversions, where a higher conversion rate is always better", flag)
		}
	}
	if o.stableConv == "" || o.canaryConv == "" {
		return BadInputf("both --stable-conversions and --canary-conversions are required")
	}
	level, err := o.level(stats.DefaultProportionConfLevel)
	if err != nil {
		return err
	}
	stable, err := parseConversions("stable-conversions", o.stableConv)
	if err != nil {
		return err
	}
	canary, err := parseConversions("canary-conversions", o.canaryConv)
	if err != nil {
		return err
	}
	res, err := stats.ProportionTest(canary, stable, level)
	if err != nil {
		return err
	}
	report := newConversionReport(res)
	return o.output.print(out, report, report.text)
}

// parseConversions reads flag's value X/N: X conversions out of N users,
// whole numbers with X at most N.
func parseConversions(flag, v string) (stats.Proportion, error) {
	xs, ns, ok := strings.Cut(v, "/")
	if !ok {
		return stats.Proportion{}, BadInputf("--%s %q: want X/N, conversions out of users, such as 120/1000", flag, v)
	}
	var counts [2]uint64
	for i, part := range []string{xs, ns} {
		c, err := strconv.ParseUint(strings.TrimSpace(part), 10, 64)
		if err != nil {
			return stats.Proportion{}, BadInputf("--%s %q: %q is not a count (a whole number, 0 or more)", flag, v, part)
		}
		counts[i] = c
	}
	if counts[0] > counts[1] {
		return stats.Proportion{}, BadInputf("--%s %q: %d conversions out of %d users; X cannot exceed N", flag, v, counts[0], counts[1])
	}
	return stats.Proportion{Successes: counts[0], Trials: counts[1]}, nil
}

// readSeries reads a file of numbers, a JSON array or one number per line
// (see parseSeries).
func readSeries(path string) ([]float64, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	v, err := parseSeries(data)
	if err != nil {
		return nil, fmt.Errorf("%s:%w", path, err)
	}
	return v, nil
}

// parseSeries reads a JSON array when the content starts with '[', else one
// number per line. Errors start with the line number and a colon, so the
// caller can put the file name in front.
func parseSeries(data []byte) ([]float64, error) {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")) // a UTF-8 byte order mark
	var v []float64
	var err error
	if t := bytes.TrimLeft(data, " \t\r\n"); len(t) > 0 && t[0] == '[' {
		v, err = parseJSONSeries(data)
	} else {
		v, err = parseLineSeries(data)
	}
	if err != nil {
		return nil, err
	}
	if len(v) == 0 {
		return nil, errors.New("1: no values")
	}
	return v, nil
}

// parseLineSeries reads one number per line. Blank lines are skipped, and so
// is the first non-blank line when it is not a number: a CSV header.
func parseLineSeries(data []byte) ([]float64, error) {
	var out []float64
	sc := bufio.NewScanner(bytes.NewReader(data))
	seen := false
	for line := 1; sc.Scan(); line++ {
		s := strings.TrimSpace(sc.Text())
		if s == "" {
			continue
		}
		x, err := strconv.ParseFloat(s, 64)
		if err != nil && !seen {
			seen = true
			continue
		}
		seen = true
		if err != nil {
			return nil, fmt.Errorf("%d: %q is not a number", line, s)
		}
		if math.IsInf(x, 0) {
			return nil, fmt.Errorf("%d: %q is not a finite number", line, s)
		}
		out = append(out, x)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("1: %v", err)
	}
	return out, nil
}

// parseJSONSeries reads a JSON array of numbers, null standing for a
// missing value.
func parseJSONSeries(data []byte) ([]float64, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	lineAt := func(off int64) int { return 1 + bytes.Count(data[:min(off, int64(len(data)))], []byte("\n")) }
	fail := func(err error) error {
		var syn *json.SyntaxError
		if errors.As(err, &syn) {
			return fmt.Errorf("%d: %v", lineAt(syn.Offset), err)
		}
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return fmt.Errorf("%d: the array is not closed", lineAt(int64(len(data))))
		}
		return fmt.Errorf("%d: %v", lineAt(dec.InputOffset()), err)
	}
	if _, err := dec.Token(); err != nil { // the opening '['
		return nil, fail(err)
	}
	var out []float64
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fail(err)
		}
		// A token ends on the line it starts on, so the offset after it
		// names its line.
		line := lineAt(dec.InputOffset())
		switch t := tok.(type) {
		case nil:
			out = append(out, math.NaN())
		case json.Number:
			x, err := strconv.ParseFloat(string(t), 64)
			if err != nil || math.IsInf(x, 0) {
				return nil, fmt.Errorf("%d: %s is not a finite number", line, t)
			}
			out = append(out, x)
		default:
			return nil, fmt.Errorf("%d: element %d is %v, not a number", line, len(out)+1, tok)
		}
	}
	if _, err := dec.Token(); err != nil { // the closing ']'
		return nil, fail(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%d: unexpected content after the array", lineAt(dec.InputOffset()))
	}
	return out, nil
}

// judgeReport is what pipit judge prints. Numbers that are undefined (no
// test ran, a mean of zero) are null in JSON.
type judgeReport struct {
	Classification stats.Classification `json:"classification"`
	Reason         string               `json:"reason"`
	Score          float64              `json:"score"`
	Verdict        stats.Verdict        `json:"verdict"`
	ScoreReason    string               `json:"scoreReason,omitempty"`
	Estimate       *float64             `json:"estimate"`
	ConfInt        []*float64           `json:"confInt"`
	ConfLevel      float64              `json:"confLevel"`
	PValue         *float64             `json:"pValue"`
	W              *float64             `json:"W"`
	MeanRatio      *float64             `json:"meanRatio"`
	Canary         seriesReport         `json:"canary"`
	Stable         seriesReport         `json:"stable"`
	// Unit is what the values (and so the shift and the means) are in.
	Unit string `json:"unit,omitempty"`
}

type seriesReport struct {
	Count int      `json:"count"`
	Mean  *float64 `json:"mean"`
}

func newJudgeReport(res stats.MetricResult, card stats.Scorecard, level float64) judgeReport {
	r := judgeReport{
		Classification: res.Classification,
		Reason:         res.Reason,
		Score:          card.Score,
		Verdict:        card.Verdict,
		ScoreReason:    card.Reason,
		ConfLevel:      level,
		MeanRatio:      finite(res.MeanRatio),
		Canary:         seriesReport{res.Canary.Count, finite(res.Canary.Mean)},
		Stable:         seriesReport{res.Stable.Count, finite(res.Stable.Mean)},
	}
	if t := res.Test; t != nil {
		r.Estimate, r.PValue, r.W = finite(t.Estimate), finite(t.PValue), finite(t.W)
		r.ConfInt = []*float64{finite(t.ConfInt[0]), finite(t.ConfInt[1])}
	}
	return r
}

// finite returns a pointer to v, or nil when v is NaN or infinite.
func finite(v float64) *float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return nil
	}
	return &v
}

// gNum writes a report's number to 6 significant digits, or "-" when it
// is undefined.
func gNum(v *float64) string {
	if v == nil {
		return "-"
	}
	return strconv.FormatFloat(*v, 'g', 6, 64)
}

func (r judgeReport) text() string {
	// inUnit writes a value in the series' unit: the shift, the means.
	inUnit := func(v *float64) string {
		if v == nil {
			return "-"
		}
		return spec.WithUnit(gNum(v), r.Unit)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Classification:  %s (%s)\n", r.Classification, r.Reason)
	verdict := string(r.Verdict)
	if r.ScoreReason != "" {
		verdict += ": " + r.ScoreReason
	}
	fmt.Fprintf(&b, "Score:           %s of 100 (%s)\n", gNum(&r.Score), verdict)
	if r.Estimate != nil {
		fmt.Fprintf(&b, "Shift:           %s (Hodges-Lehmann estimate of canary - stable)\n", inUnit(r.Estimate))
		fmt.Fprintf(&b, "%-17s[%s, %s]\n", gNum(ptr(100*r.ConfLevel))+"% interval:", inUnit(r.ConfInt[0]), inUnit(r.ConfInt[1]))
		fmt.Fprintf(&b, "p-value:         %s (Wilcoxon rank-sum, W = %s, normal approximation)\n", gNum(r.PValue), gNum(r.W))
	} else {
		fmt.Fprintf(&b, "Shift:           - (no test was needed)\n")
	}
	fmt.Fprintf(&b, "Mean ratio:      %s\n", gNum(r.MeanRatio))
	fmt.Fprintf(&b, "Canary:          %d values, mean %s\n", r.Canary.Count, inUnit(r.Canary.Mean))
	fmt.Fprintf(&b, "Stable:          %d values, mean %s\n", r.Stable.Count, inUnit(r.Stable.Mean))
	return b.String()
}

func ptr(v float64) *float64 { return &v }

// conversionReport is what pipit judge prints for conversions. Numbers that
// are undefined (a side without users, no conversions at all) are null in
// JSON.
type conversionReport struct {
	Test       string                  `json:"test"`
	Verdict    stats.ProportionVerdict `json:"verdict"`
	Reason     string                  `json:"reason"`
	Difference *float64                `json:"difference"`
	ConfInt    []*float64              `json:"confInt"`
	ConfLevel  float64                 `json:"confLevel"`
	PValue     *float64                `json:"pValue"`
	Z          *float64                `json:"z"`
	Canary     conversionsReport       `json:"canary"`
	Stable     conversionsReport       `json:"stable"`
}

// conversionsReport is one side of a conversionReport.
type conversionsReport struct {
	Conversions uint64   `json:"conversions"`
	Users       uint64   `json:"users"`
	Rate        *float64 `json:"rate"`
}

func newConversionReport(r stats.ProportionResult) conversionReport {
	return conversionReport{
		Test:       "two-proportion z-test, no continuity correction",
		Verdict:    r.Verdict,
		Reason:     r.Reason,
		Difference: finite(r.Difference),
		ConfInt:    []*float64{finite(r.ConfInt[0]), finite(r.ConfInt[1])},
		ConfLevel:  r.ConfLevel,
		PValue:     finite(r.PValue),
		Z:          finite(r.Z),
		Canary:     conversionsReport{r.Canary.Successes, r.Canary.Trials, finite(r.CanaryRate)},
		Stable:     conversionsReport{r.Stable.Successes, r.Stable.Trials, finite(r.StableRate)},
	}
}

func (r conversionReport) text() string {
	pct := func(v *float64) string {
		if v == nil {
			return "-"
		}
		return strconv.FormatFloat(100**v, 'g', 4, 64) + "%"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Verdict:         %s (%s)\n", r.Verdict, r.Reason)
	fmt.Fprintf(&b, "Difference:      %s (canary %s - stable %s)\n", gNum(r.Difference), pct(r.Canary.Rate), pct(r.Stable.Rate))
	fmt.Fprintf(&b, "%-17s[%s, %s]\n", gNum(ptr(100*r.ConfLevel))+"% interval:", gNum(r.ConfInt[0]), gNum(r.ConfInt[1]))
	fmt.Fprintf(&b, "p-value:         %s (%s, z = %s)\n", gNum(r.PValue), r.Test, gNum(r.Z))
	fmt.Fprintf(&b, "Canary:          %d of %d users converted\n", r.Canary.Conversions, r.Canary.Users)
	fmt.Fprintf(&b, "Stable:          %d of %d users converted\n", r.Stable.Conversions, r.Stable.Users)
	return b.String()
}
