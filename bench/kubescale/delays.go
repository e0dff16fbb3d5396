package kubescale

import (
	"math"
	"slices"
	"time"

	"github.com/pipit-dev/pipit/api/v1alpha1"
)

// timeline is one rollout's progression: its status history, and when the
// benchmark changed its image and first saw each canary weight in its
// HTTPRoute.
type timeline struct {
	imageChanged time.Time
	history      []v1alpha1.Event
	routeSeen    map[v1alpha1.Percent]time.Time
}

// delays gathers the timings of many progressions whose plans alternate
// setWeight and pause steps, all pauses of the same length.
type delays struct {
	// decision: a WeightChanged that ends a pause, its time in the history
	// minus the pause's due time (the previous WeightChanged plus the
	// pause). The engine takes the decision at that time and writes the
	// status after it.
	decision []time.Duration
	// route: the same weight change seen in the HTTPRoute by the
	// benchmark's watch, minus the due time: the status write, the route
	// write and the watch's delivery on top of the decision.
	route []time.Duration
	// promote: the promotion's start after the last pause, minus its due
	// time.
	promote []time.Duration
	// firstWeight: from the image change to the first weight, which waits
	// for the canary copy's pods to be ready.
	firstWeight []time.Duration
	// promotion: from the promotion's start to its end (the stable copy
	// rolled out with the canary's template).
	promotion []time.Duration
	// total: from the image change to the end of the promotion.
	total []time.Duration
	// incomplete counts progressions that did not get to Promoted.
	incomplete int
}

// add takes one rollout's progression: the events after the last Started
// of its history.
func (d *delays) add(tl timeline, pause time.Duration) {
	start := -1
	for i, e := range tl.history {
		if e.Reason == "Started" {
			start = i
		}
	}
	if start < 0 {
		d.incomplete++
		return
	}
	var lastWeight, promoting time.Time
	done := false
	for _, e := range tl.history[start+1:] {
		at := e.Time.Time
		switch e.Reason {
		case "WeightChanged":
			if lastWeight.IsZero() {
				d.firstWeight = append(d.firstWeight, at.Sub(tl.imageChanged))
			} else {
				due := lastWeight.Add(pause)
				d.decision = append(d.decision, at.Sub(due))
				if seen, ok := tl.routeSeen[e.Weight]; ok {
					d.route = append(d.route, seen.Sub(due))
				}
			}
			lastWeight = at
		case "Promoting":
			if !lastWeight.IsZero() {
				d.promote = append(d.promote, at.Sub(lastWeight.Add(pause)))
			}
			promoting = at
		case "Promoted":
			if !promoting.IsZero() {
				d.promotion = append(d.promotion, at.Sub(promoting))
			}
			d.total = append(d.total, at.Sub(tl.imageChanged))
			done = true
		}
	}
	if !done {
		d.incomplete++
	}
}

// quantiles summarises durations by nearest rank.
type quantiles struct {
	n                  int
	p50, p95, p99, max time.Duration
}

func summarise(ds []time.Duration) quantiles {
	if len(ds) == 0 {
		return quantiles{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	rank := func(p float64) time.Duration {
		i := int(math.Ceil(float64(len(s))*p)) - 1
		return s[min(max(i, 0), len(s)-1)]
	}
	return quantiles{n: len(s), p50: rank(0.50), p95: rank(0.95), p99: rank(0.99), max: s[len(s)-1]}
}
