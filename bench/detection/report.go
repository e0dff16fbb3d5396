package main

import (
	"cmp"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/pipit-dev/pipit/internal/spec"
)

// describe says in one line what a plan's analysis does.
func describe(p spec.Plan) string {
	a := p.Analysis
	var parts []string
	if a.Sequential.Enabled {
		parts = append(parts, fmt.Sprintf("sequential error-rate test every second (false-alarm rate %g)", a.Sequential.Alpha))
	}
	for _, m := range a.Metrics {
		switch {
		case m.Compare != nil:
			allowed := 0.0
			if m.Compare.AllowedChange != nil {
				allowed = *m.Compare.AllowedChange
			}
			parts = append(parts, fmt.Sprintf("%s compared with stable (direction %s, allowedChange %g)", m.Name, cmp.Or(m.Compare.Direction, "either"), allowed))
		case m.ThresholdRange != nil && m.ThresholdRange.Min != nil:
			parts = append(parts, fmt.Sprintf("%s >= %g", m.Name, *m.ThresholdRange.Min))
		case m.ThresholdRange != nil && m.ThresholdRange.Max != nil:
			parts = append(parts, fmt.Sprintf("%s <= %g", m.Name, *m.ThresholdRange.Max))
		default:
			parts = append(parts, m.Name)
		}
	}
	if len(a.Metrics) > 0 {
		parts = append(parts, fmt.Sprintf("checks every %s, failureLimit %d", a.Interval, a.FailureLimit))
	}
	return strings.Join(parts, "; ")
}

// writeTable prints one row per cell and configuration, as Markdown.
func writeTable(w io.Writer, cfgs []config, cells []cell, tallies [][]tally) {
	fmt.Fprintln(w, "| configuration | req/s | canary | runs | rolled back | median to rollback | p95 to rollback | false rollbacks | wrongly promoted | rolled back by |")
	fmt.Fprintln(w, "|---|---:|---|---:|---:|---:|---:|---:|---:|---|")
	for i, c := range cells {
		for j, cfg := range cfgs {
			t := tallies[i][j]
			rolled := len(t.detections)
			falseRB, missed := "—", "—"
			if c.scenario.healthy() {
				falseRB = percent(rolled, t.runs)
			} else {
				missed = percent(t.runs-rolled, t.runs)
			}
			fmt.Fprintf(w, "| %s | %g | %s | %d | %d | %s | %s | %s | %s | %s |\n",
				cfg.name, c.rate, c.scenario.name, t.runs, rolled,
				seconds(quantile(t.detections, 0.5)), seconds(quantile(t.detections, 0.95)),
				falseRB, missed, decidedBy(t.decidedBy))
		}
	}
}

// quantile is the nearest-rank q-quantile of ds; -1 when ds is empty.
func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return -1
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[max(1, int(math.Ceil(q*float64(len(s)))))-1]
}

func seconds(d time.Duration) string {
	if d < 0 {
		return "—"
	}
	return fmt.Sprintf("%.0f s", d.Seconds())
}

func percent(n, of int) string {
	if of == 0 {
		return "—"
	}
	return fmt.Sprintf("%.1f%%", 100*float64(n)/float64(of))
}

// decidedBy lists what rolled canaries back, most frequent first.
func decidedBy(by map[string]int) string {
	names := make([]string, 0, len(by))
	for n := range by {
		names = append(names, n)
	}
	slices.SortFunc(names, func(a, b string) int { return cmp.Or(cmp.Compare(by[b], by[a]), cmp.Compare(a, b)) })
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = fmt.Sprintf("%s %d", n, by[n])
	}
	if len(parts) == 0 {
		return "—"
	}
	return strings.Join(parts, ", ")
}

// summary is the headline: how much sooner pipit rolls back a +5-point
// error regression at 500 req/s than the Flagger-equivalent configuration,
// and how often pipit rolls back healthy canaries.
type summary struct {
	speedup float64 // NaN when either never rolled back
	// falseRollback is pipit's false-rollback rate on healthy canaries in
	// percent, by traffic rate; NaN where not simulated.
	falseRollback map[float64]float64
}

// headline cell and configurations.
const (
	headlineRate     = 500
	headlineScenario = "errors +5pt"
	pipitConfig      = 0 // index in loadConfigs' order
	flaggerConfig    = 1
)

func summarize(cells []cell, tallies [][]tally) summary {
	s := summary{speedup: math.NaN(), falseRollback: map[float64]float64{}}
	for i, c := range cells {
		t := tallies[i]
		switch {
		case c.rate == headlineRate && c.scenario.name == headlineScenario:
			p, f := quantile(t[pipitConfig].detections, 0.5), quantile(t[flaggerConfig].detections, 0.5)
			if p > 0 && f > 0 {
				s.speedup = f.Seconds() / p.Seconds()
			}
		case c.scenario.healthy() && t[pipitConfig].runs > 0:
			s.falseRollback[c.rate] = 100 * float64(len(t[pipitConfig].detections)) / float64(t[pipitConfig].runs)
		}
	}
	return s
}

// writeSummary prints the false-rollback rates at every rate, then the
// headline as the last line.
func writeSummary(w io.Writer, s summary) {
	rates := make([]float64, 0, len(s.falseRollback))
	for r := range s.falseRollback {
		rates = append(rates, r)
	}
	slices.Sort(rates)
	for _, r := range rates {
		fmt.Fprintf(w, "pipit false-rollback rate at %g req/s: %.1f%%\n", r, s.falseRollback[r])
	}
	speedup := "n/a"
	if !math.IsNaN(s.speedup) {
		speedup = fmt.Sprintf("%.1f", s.speedup)
	}
	fr := "n/a"
	if v, ok := s.falseRollback[headlineRate]; ok {
		fr = fmt.Sprintf("%.1f", v)
	}
	fmt.Fprintf(w, "speedup vs flagger-default (+5pt errors, 500 req/s): %sx; pipit false-rollback rate: %s%%\n", speedup, fr)
}
