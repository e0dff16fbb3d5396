// Command detection measures how soon pipit's default analysis rolls back a
// regressed canary, and how often it rolls back a healthy one, against a
// configuration equivalent to Flagger's defaults, on the same simulated
// traffic. The real engine makes every decision on a simulated clock, so
// thousands of half-hour rollouts run in minutes.
//
//	go run ./bench/detection [-runs 1000] [-seed 1] [-baseline 1] [-quick]
//
// Each run deploys a canary that holds at 5% of the traffic for 30
// minutes and is then promoted. Requests arrive as a Poisson process at 50
// or 500 per second in all; the canary is healthy or regressed from its
// first request on. Results: docs/benchmarks.md.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"time"
)

// options are the command's flags.
type options struct {
	runs     int
	seed     uint64
	baseline float64 // stable error rate, percent
	quick    bool
	workers  int
}

func main() {
	var o options
	flag.IntVar(&o.runs, "runs", 1000, "simulated rollouts per cell (configuration × rate × canary)")
	flag.Uint64Var(&o.seed, "seed", 1, "random seed; the same seed gives the same table")
	flag.Float64Var(&o.baseline, "baseline", 1, "the stable's error rate in percent")
	flag.BoolVar(&o.quick, "quick", false, "a few runs of a few cells, to check that it works")
	flag.IntVar(&o.workers, "workers", runtime.GOMAXPROCS(0), "parallel simulations")
	flag.Parse()
	if err := run(o, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "detection:", err)
		os.Exit(1)
	}
}

// quickRuns and quickScenarios make the -quick configuration.
const quickRuns = 3

var quickScenarios = []string{"healthy", headlineScenario, "latency x2"}

// run simulates every cell and prints the table, then the headline as the
// last line.
func run(o options, w io.Writer) error {
	if o.runs < 1 {
		return fmt.Errorf("-runs must be at least 1")
	}
	if !(o.baseline >= 0 && o.baseline < 100) {
		return fmt.Errorf("-baseline must be a percentage from 0 to below 100")
	}
	cfgs, err := loadConfigs()
	if err != nil {
		return err
	}
	tr := traffic{Baseline: o.baseline, LatencyMedian: 50, LatencySigma: 0.75}
	cells := makeCells(o.quick)
	if o.quick {
		o.runs = min(o.runs, quickRuns)
	}
	weight, _ := holdWeight(cfgs[pipitConfig].plan)
	fmt.Fprintf(w, "Detection benchmark: %d runs per cell, seed %d, %d workers\n", o.runs, o.seed, o.workers)
	fmt.Fprintf(w, "traffic: Poisson arrivals, canary weight %g%%; %s\n", 100*weight, tr)
	for _, c := range cfgs {
		fmt.Fprintf(w, "%s: %s\n", c.name, describe(c.plan))
	}
	fmt.Fprintln(w)
	start := time.Now()
	tallies, err := runCells(cfgs, tr, cells, o.runs, o.seed, o.workers)
	if err != nil {
		return err
	}
	writeTable(w, cfgs, cells, tallies)
	fmt.Fprintf(w, "\nsimulated %d rollouts in %s\n", o.runs*len(cells)*len(cfgs), time.Since(start).Round(100*time.Millisecond))
	writeSummary(w, summarize(cells, tallies))
	return nil
}

// makeCells lists the cells: 50 and 500 requests per second, each
// scenario, or a few of them when quick.
func makeCells(quick bool) []cell {
	var cells []cell
	for _, rate := range []float64{50, headlineRate} {
		for _, sc := range scenarios {
			if quick && !slices.Contains(quickScenarios, sc.name) {
				continue
			}
			cells = append(cells, cell{rate: rate, scenario: sc})
		}
	}
	return cells
}
