package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeFile writes content to name in dir and returns its path.
func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// lines returns 0+shift, 1+shift, ..., n-1+shift, one per line, under a
// header.
func lines(header string, n int, shift float64) string {
	var b strings.Builder
	if header != "" {
		b.WriteString(header + "\n")
	}
	for i := range n {
		fmt.Fprintf(&b, "%g\n", float64(i)+shift)
	}
	return b.String()
}

func jsonArray(n int, shift float64) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = fmt.Sprintf("%g", float64(i)+shift)
	}
	return "[\n  " + strings.Join(parts, ",\n  ") + "\n]\n"
}

func runJudge(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := Execute(context.Background(), append([]string{"judge"}, args...), &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func TestJudgeJSON(t *testing.T) {
	dir := t.TempDir()
	stable := writeFile(t, dir, "stable.csv", lines("latency_ms", 30, 0))
	// ramp+12 against ramp: interval [6.00006, 18], estimate 12.
	canary := writeFile(t, dir, "canary.json", jsonArray(30, 12))

	code, out, errOut := runJudge(t, "--stable", stable, "--canary", canary, "-o", "json")
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var r struct {
		Classification string              `json:"classification"`
		Score          float64             `json:"score"`
		Verdict        string              `json:"verdict"`
		Estimate       float64             `json:"estimate"`
		ConfInt        []float64           `json:"confInt"`
		ConfLevel      float64             `json:"confLevel"`
		PValue         float64             `json:"pValue"`
		MeanRatio      float64             `json:"meanRatio"`
		Canary         struct{ Count int } `json:"canary"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("%v in %s", err, out)
	}
	if r.Classification != "High" || r.Score != 0 || r.Verdict != "Fail" || r.Estimate != 12 || r.ConfLevel != 0.98 || r.Canary.Count != 30 {
		t.Fatalf("report %+v", r)
	}
	if len(r.ConfInt) != 2 || r.ConfInt[0] < 6 || r.ConfInt[0] > 6.001 || r.ConfInt[1] > 18 || r.ConfInt[1] < 17.999 {
		t.Fatalf("interval %v, want about [6, 18]", r.ConfInt)
	}
	if r.PValue <= 0 || r.PValue > 1e-4 || r.MeanRatio < 1.8 {
		t.Fatalf("p-value %v, mean ratio %v", r.PValue, r.MeanRatio)
	}
}

func TestJudgeFlagsChangeTheVerdict(t *testing.T) {
	dir := t.TempDir()
	stable := writeFile(t, dir, "stable.csv", lines("", 30, 100))
	canary := writeFile(t, dir, "canary.csv", lines("value", 30, 112))
	cases := []struct {
		name  string
		flags []string
		want  string
	}{
		{"default fails a rise", nil, "Classification:  High"},
		{"only a decrease fails", []string{"--direction", "decrease"}, "Classification:  Pass"},
		// The means are 114.5 and 126.5, a rise of 10.5%.
		{"a 10% allowance still fails", []string{"--allowed-change", "0.1"}, "Classification:  High"},
		{"a 20% allowance passes", []string{"--allowed-change", "0.2"}, "Classification:  Pass"},
		{"a lower confidence still fails", []string{"--confidence", "0.9"}, "90% interval:"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, out, errOut := runJudge(t, append([]string{"--stable", stable, "--canary", canary}, c.flags...)...)
			if code != ExitOK || !strings.Contains(out, c.want) {
				t.Fatalf("exit %d, output:\n%s%s\nwant %q", code, out, errOut, c.want)
			}
		})
	}
}

func TestJudgeTextPass(t *testing.T) {
	dir := t.TempDir()
	same := lines("", 20, 5)
	stable := writeFile(t, dir, "stable.csv", same)
	canary := writeFile(t, dir, "canary.csv", "NaN\n"+same)
	code, out, errOut := runJudge(t, "--stable", stable, "--canary", canary)
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{"Classification:  Pass", "Score:           100 of 100 (Pass)", "Shift:           - ", "Canary:          20 values"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// TestJudgeTextUnit: --unit puts the values' unit after the shift, its
// interval and the means, and into the JSON report.
func TestJudgeTextUnit(t *testing.T) {
	dir := t.TempDir()
	stable := writeFile(t, dir, "stable.csv", lines("latency_ms", 30, 0))
	canary := writeFile(t, dir, "canary.csv", lines("latency_ms", 30, 12))
	code, out, errOut := runJudge(t, "--stable", stable, "--canary", canary, "--unit", "ms")
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{"Shift:           12ms (", "interval:    [6.00006ms, 17.9999ms]", "mean 26.5ms", "mean 14.5ms"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	_, out, _ = runJudge(t, "--stable", stable, "--canary", canary, "--unit", "ms", "-o", "json")
	var r struct{ Unit string }
	if err := json.Unmarshal([]byte(out), &r); err != nil || r.Unit != "ms" {
		t.Errorf("JSON report unit %q (%v):\n%s", r.Unit, err, out)
	}
}

func TestJudgeNoData(t *testing.T) {
	dir := t.TempDir()
	stable := writeFile(t, dir, "stable.csv", lines("", 10, 0))
	canary := writeFile(t, dir, "canary.json", "[null, null]")
	code, out, errOut := runJudge(t, "--stable", stable, "--canary", canary, "-o", "json")
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{`"classification": "Nodata"`, `"estimate": null`, `"verdict": "Fail"`, `"scoreReason": "1 of 1 metrics have no data"`} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %s:\n%s", want, out)
		}
	}
}

func TestJudgeBadInput(t *testing.T) {
	dir := t.TempDir()
	good := writeFile(t, dir, "good.csv", lines("", 10, 0))
	cases := []struct {
		name    string
		content string // written to bad file; empty means use args as given
		args    []string
		want    string
	}{
		{"text in csv", "value\n1\n2\nthree\n", nil, "bad:4: \"three\" is not a number"},
		{"second header", "a\nb\n1\n", nil, "bad:2: \"b\" is not a number"},
		{"infinity", "1\n+Inf\n", nil, "bad:2: \"+Inf\" is not a finite number"},
		{"empty file", "\n\n", nil, "bad:1: no values"},
		{"header only", "value\n", nil, "bad:1: no values"},
		{"json string", "[1,\n 2,\n \"x\"]", nil, "bad:3: element 3 is x, not a number"},
		{"json object", "[1, {\"a\": 1}]", nil, "bad:1: element 2 is {, not a number"},
		{"json syntax", "[1,\n2,,\n3]", nil, "bad:2: invalid character ','"},
		{"json unclosed", "[1,\n2\n", nil, "bad:3: the array is not closed"},
		{"json overflow", "[1e400]", nil, "bad:1: 1e400 is not a finite number"},
		{"json trailing", "[1]\n[2]", nil, "bad:2: unexpected content after the array"},
		{"missing file", "", []string{"--stable", good, "--canary", "/nonexistent/c.csv"}, "/nonexistent/c.csv"},
		{"missing flag", "", []string{"--stable", good}, "both --stable and --canary are required"},
		{"bad direction", "", []string{"--stable", good, "--canary", good, "--direction", "up"}, "--direction"},
		{"bad confidence", "", []string{"--stable", good, "--canary", good, "--confidence", "98"}, "--confidence"},
		{"bad allowance", "", []string{"--stable", good, "--canary", good, "--allowed-change", "1"}, "--allowed-change"},
		{"bad output", "", []string{"--stable", good, "--canary", good, "-o", "xml"}, "--output"},
		{"argument", "", []string{"--stable", good, "--canary", good, "extra"}, "accepts 0 arg"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			args := c.args
			if c.content != "" || args == nil {
				bad := writeFile(t, dir, "bad", c.content)
				args = []string{"--stable", good, "--canary", bad}
			}
			code, out, errOut := runJudge(t, args...)
			if code != ExitBadInput {
				t.Fatalf("exit %d, want %d; stderr %s", code, ExitBadInput, errOut)
			}
			if !strings.Contains(errOut, c.want) || out != "" {
				t.Fatalf("stderr %q lacks %q (stdout %q)", errOut, c.want, out)
			}
		})
	}
}

// conversionsJSON is the JSON pipit judge prints for conversions.
type conversionsJSON struct {
	Verdict    string     `json:"verdict"`
	Reason     string     `json:"reason"`
	Difference *float64   `json:"difference"`
	ConfInt    []*float64 `json:"confInt"`
	ConfLevel  float64    `json:"confLevel"`
	PValue     *float64   `json:"pValue"`
	Z          *float64   `json:"z"`
	Canary     struct {
		Conversions, Users uint64
		Rate               *float64
	} `json:"canary"`
}

// near reports whether v is set and within 1e-6 of want.
func near(v *float64, want float64) bool { return v != nil && math.Abs(*v-want) < 1e-6 }

func TestJudgeConversionsJSON(t *testing.T) {
	// R: prop.test(c(130, 100), c(1000, 1000), correct = FALSE) gives
	// p = 0.03548845 and the interval [0.002067934, 0.057932066].
	code, out, errOut := runJudge(t, "--stable-conversions", "100/1000", "--canary-conversions", "130/1000", "-o", "json")
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var r conversionsJSON
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("%v in %s", err, out)
	}
	if r.Verdict != "Better" || r.ConfLevel != 0.95 || !near(r.Difference, 0.03) || !near(r.PValue, 0.03548845) || !near(r.Z, 2.1027406) {
		t.Fatalf("report %s", out)
	}
	if len(r.ConfInt) != 2 || !near(r.ConfInt[0], 0.002067934) || !near(r.ConfInt[1], 0.057932066) {
		t.Fatalf("interval in %s", out)
	}
	if r.Canary.Conversions != 130 || r.Canary.Users != 1000 || !near(r.Canary.Rate, 0.13) {
		t.Fatalf("canary in %s", out)
	}
}

func TestJudgeConversionsVerdicts(t *testing.T) {
	cases := []struct {
		name           string
		stable, canary string
		flags          []string
		want           []string
	}{
		{"better", "100/1000", "130/1000", nil, []string{"Verdict:         Better", "95% interval:    [0.00206793, 0.0579321]", "canary 13% - stable 10%"}},
		{"worse", "130/1000", "100/1000", nil, []string{"Verdict:         Worse", "Difference:      -0.03"}},
		{"not at 99%", "100/1000", "130/1000", []string{"--confidence", "0.99"}, []string{"Verdict:         NoDifference", "99% interval:"}},
		{"equal", "50/500", "100/1000", nil, []string{"Verdict:         NoDifference", "p-value:         1 "}},
		{"no users yet", "0/0", "3/40", nil, []string{"Verdict:         NotEnoughData", "p-value:         - "}},
		{"no conversions", "0/100", "0/100", nil, []string{"Verdict:         NotEnoughData", "95% interval:    [0, 0]"}},
		{"too few", "1/1000", "4/1000", nil, []string{"Verdict:         NotEnoughData (the smallest expected count"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, out, errOut := runJudge(t, append([]string{"--stable-conversions", c.stable, "--canary-conversions", c.canary}, c.flags...)...)
			if code != ExitOK {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			for _, want := range c.want {
				if !strings.Contains(out, want) {
					t.Errorf("output lacks %q:\n%s", want, out)
				}
			}
		})
	}
}

var judgeConversionsBadInput = []struct {
	name string
	args []string
	want string
}{
	{"more conversions than users", []string{"--stable-conversions", "10/100", "--canary-conversions", "130/100"}, `--canary-conversions "130/100": 130 conversions out of 100 users; X cannot exceed N`},
	{"not X/N", []string{"--stable-conversions", "0.12", "--canary-conversions", "1/10"}, `--stable-conversions "0.12": want X/N`},
	{"negative", []string{"--stable-conversions", "-5/100", "--canary-conversions", "1/10"}, `--stable-conversions "-5/100": "-5" is not a count`},
	{"negative users", []string{"--stable-conversions", "5/100", "--canary-conversions", "1/-10"}, `--canary-conversions "1/-10": "-10" is not a count`},
	{"fraction", []string{"--stable-conversions", "5/100", "--canary-conversions", "1.5/10"}, `--canary-conversions "1.5/10": "1.5" is not a count`},
	{"three parts", []string{"--stable-conversions", "5/100/2", "--canary-conversions", "1/10"}, `--stable-conversions "5/100/2": "100/2" is not a count`},
	{"one side", []string{"--stable-conversions", "5/100"}, "both --stable-conversions and --canary-conversions are required"},
	{"with series", []string{"--stable-conversions", "5/100", "--canary-conversions", "1/10", "--stable", "s.csv"}, "--stable is for series"},
	{"with direction", []string{"--stable-conversions", "5/100", "--canary-conversions", "1/10", "--direction", "increase"}, "--direction is for series"},
	{"with allowance", []string{"--stable-conversions", "5/100", "--canary-conversions", "1/10", "--allowed-change", "0.1"}, "--allowed-change is for series"},
	{"confidence 0", []string{"--stable-conversions", "5/100", "--canary-conversions", "1/10", "--confidence", "0"}, "--confidence 0: want a number between 0 and 1"},
	{"bad output", []string{"--stable-conversions", "5/100", "--canary-conversions", "1/10", "-o", "xml"}, "--output"},
}

func TestJudgeConversionsBadInput(t *testing.T) {
	for _, c := range judgeConversionsBadInput {
		t.Run(c.name, func(t *testing.T) {
			code, out, errOut := runJudge(t, c.args...)
			if code != ExitBadInput {
				t.Fatalf("exit %d, want %d; stdout %s stderr %s", code, ExitBadInput, out, errOut)
			}
			if !strings.Contains(errOut, c.want) || out != "" {
				t.Fatalf("stderr %q lacks %q (stdout %q)", errOut, c.want, out)
			}
		})
	}
}
