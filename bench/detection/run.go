package main

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"time"
)

// t0 is when every simulated rollout starts.
var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// runCap ends a run that neither rolled back nor was promoted: the plans
// promote after 30 minutes at 5%, so only a stuck rollout reaches it.
const runCap = 35 * time.Minute

// cell is one traffic rate and one canary scenario; every configuration
// runs on the same simulated traffic of each of its runs.
type cell struct {
	rate     float64
	scenario scenario
}

// simulate runs every configuration through one rollout on the same
// simulated traffic, until each rolled back, was promoted, or the cap.
func simulate(cfgs []config, tr traffic, sc scenario, rng *rand.Rand) ([]outcome, error) {
	arms := make([]*arm, len(cfgs))
	for i, c := range cfgs {
		arms[i] = newArm(c, tr, rng)
		if err := arms[i].deploy(t0); err != nil {
			return nil, err
		}
	}
	var sec second
	for now := t0; now.Sub(t0) < runCap; {
		w, active, err := weightOf(arms)
		if err != nil {
			return nil, err
		}
		if !active {
			break
		}
		now = now.Add(time.Second)
		tr.draw(rng, sc, w, &sec)
		for _, a := range arms {
			if a.done() {
				continue
			}
			if err := a.tick(now, &sec); err != nil {
				return nil, err
			}
		}
	}
	out := make([]outcome, len(arms))
	for i, a := range arms {
		out[i] = a.outcome()
	}
	return out, nil
}

// weightOf returns the canary weight (a fraction) of the rollouts still
// under way, which share one plan of weights and so one traffic split;
// active is false when none is.
func weightOf(arms []*arm) (w float64, active bool, err error) {
	for _, a := range arms {
		if a.done() {
			continue
		}
		aw := a.weight.Float() / 100
		if active && aw != w {
			return 0, false, fmt.Errorf("the configurations route different weights (%g and %g): give them the same steps", w, aw)
		}
		w, active = aw, true
	}
	return w, active, nil
}

// tally gathers one configuration's outcomes in one cell.
type tally struct {
	runs, promoted int
	detections     []time.Duration // of the runs that rolled back
	decidedBy      map[string]int
}

func (t *tally) add(o outcome) {
	t.runs++
	switch {
	case o.rolledBack:
		t.detections = append(t.detections, o.detection)
		if t.decidedBy == nil {
			t.decidedBy = map[string]int{}
		}
		t.decidedBy[o.decidedBy]++
	case o.promoted:
		t.promoted++
	}
}

// runCells simulates runs rollouts per cell on workers goroutines and
// returns the tallies by cell, then configuration. Each run has its own
// random stream, derived from seed, the cell and the run, so results do
// not depend on the number of workers.
func runCells(cfgs []config, tr traffic, cells []cell, runs int, seed uint64, workers int) ([][]tally, error) {
	type job struct{ cell, run int }
	type result struct {
		cell     int
		outcomes []outcome
		err      error
	}
	jobs := make(chan job)
	results := make(chan result)
	var wg sync.WaitGroup
	for range max(1, workers) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				c := cells[j.cell]
				t := tr
				t.Rate = c.rate
				rng := rand.New(rand.NewPCG(seed, uint64(j.cell)<<32|uint64(j.run)))
				o, err := simulate(cfgs, t, c.scenario, rng)
				results <- result{cell: j.cell, outcomes: o, err: err}
			}
		}()
	}
	go func() {
		defer close(jobs)
		for c := range cells {
			for r := range runs {
				jobs <- job{c, r}
			}
		}
	}()
	go func() {
		wg.Wait()
		close(results)
	}()
	tallies := make([][]tally, len(cells))
	for i := range tallies {
		tallies[i] = make([]tally, len(cfgs))
	}
	var firstErr error
	for r := range results {
		if r.err != nil {
			if firstErr == nil {
				firstErr = r.err
			}
			continue
		}
		for i, o := range r.outcomes {
			tallies[r.cell][i].add(o)
		}
	}
	return tallies, firstErr
}
