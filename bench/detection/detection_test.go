package main

import (
	"bytes"
	"math"
	"math/rand/v2"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestQuickRunEndsWithTheHeadline(t *testing.T) {
	var out bytes.Buffer
	if err := run(options{runs: 1000, seed: 1, baseline: 1, quick: true, workers: 2}, &out); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	last := lines[len(lines)-1]
	m := regexp.MustCompile(`^speedup vs flagger-default \(\+5pt errors, 500 req/s\): ([0-9.]+)x; pipit false-rollback rate: ([0-9.]+)%$`).FindStringSubmatch(last)
	if m == nil {
		t.Fatalf("last line %q does not read as the headline; output:\n%s", last, out.String())
	}
	// Flagger's configuration needs five failed one-minute checks; pipit's
	// sequential test needs seconds at 500 req/s.
	if speedup, _ := strconv.ParseFloat(m[1], 64); speedup < 5 {
		t.Errorf("speedup %vx, want pipit far quicker than five minutes; output:\n%s", speedup, out.String())
	}
	if !strings.Contains(out.String(), "| pipit-default | 500 | errors +5pt | "+strconv.Itoa(quickRuns)+" |") {
		t.Errorf("quick run does not have quickRuns runs of the headline cell:\n%s", out.String())
	}
}

func TestResultsDependOnTheSeedOnly(t *testing.T) {
	cfgs, err := loadConfigs()
	if err != nil {
		t.Fatal(err)
	}
	tr := traffic{Baseline: 1, LatencyMedian: 50, LatencySigma: 0.75}
	cells := []cell{{rate: 500, scenario: scenarios[4]}, {rate: 50, scenario: scenarios[4]}}
	one, err := runCells(cfgs, tr, cells, 4, 7, 1)
	if err != nil {
		t.Fatal(err)
	}
	three, err := runCells(cfgs, tr, cells, 4, 7, 3)
	if err != nil {
		t.Fatal(err)
	}
	sortAll := func(ts [][]tally) {
		for _, row := range ts {
			for _, t := range row {
				slices.Sort(t.detections)
			}
		}
	}
	sortAll(one)
	sortAll(three)
	if !reflect.DeepEqual(one, three) {
		t.Errorf("1 worker and 3 workers disagree:\n%+v\n%+v", one, three)
	}
}

func TestFlaggerRollsBackAtTheFifthFailedCheck(t *testing.T) {
	cfgs, err := loadConfigs()
	if err != nil {
		t.Fatal(err)
	}
	// 21% errors: every one-minute check fails for Flagger's 99% minimum.
	tr := traffic{Rate: 500, Baseline: 1, LatencyMedian: 50, LatencySigma: 0.75}
	out, err := simulate(cfgs, tr, scenario{name: "errors +20pt", errorDelta: 20, latencyFactor: 1}, rand.New(rand.NewPCG(1, 1)))
	if err != nil {
		t.Fatal(err)
	}
	pipit, flagger := out[pipitConfig], out[flaggerConfig]
	if !flagger.rolledBack || flagger.detection != 5*time.Minute || flagger.decidedBy != requestSuccessRate {
		t.Errorf("flagger-default: %+v, want a rollback by %s after 5 checks of 1m", flagger, requestSuccessRate)
	}
	if !pipit.rolledBack || pipit.detection >= time.Minute || pipit.decidedBy != "error-rate (sequential)" {
		t.Errorf("pipit-default: %+v, want a rollback by the sequential test before the first check", pipit)
	}
}

func TestFlawlessCanaryIsPromotedAfterThePause(t *testing.T) {
	cfgs, err := loadConfigs()
	if err != nil {
		t.Fatal(err)
	}
	// No errors at all and the same latencies: nothing can fail.
	tr := traffic{Rate: 50, Baseline: 0, LatencyMedian: 50, LatencySigma: 0.1}
	out, err := simulate(cfgs, tr, scenarios[0], rand.New(rand.NewPCG(1, 2)))
	if err != nil {
		t.Fatal(err)
	}
	for i, o := range out {
		if !o.promoted || o.rolledBack {
			t.Errorf("%s: %+v, want promoted", cfgs[i].name, o)
		}
	}
}

func TestPoissonMoments(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, mean := range []float64{0.5, 2.5, 9.9, 10, 47.5, 475} {
		const n = 40000
		var sum, sq float64
		for range n {
			x := float64(poisson(rng, mean))
			sum += x
			sq += x * x
		}
		m := sum / n
		v := sq/n - m*m
		// Five standard errors of the mean; the variance within 5%.
		if math.Abs(m-mean) > 5*math.Sqrt(mean/n) || math.Abs(v/mean-1) > 0.05 {
			t.Errorf("poisson(%v): mean %.4f, variance %.4f", mean, m, v)
		}
	}
}
