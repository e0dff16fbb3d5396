package target

import (
	"context"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/rollout"
)

// minUsageInterval is the shortest wall time a CPU measurement is taken
// over; /proc counts CPU in hundredths of a second.
const minUsageInterval = 100 * time.Millisecond

// group is one running instance of a version: its replicas, from start
// until stopped.
type group struct {
	p        *Process
	ref      v1alpha1.VersionRef
	spec     procSpec
	logf     *logFile
	replicas []*replica

	ctx       context.Context
	cancel    context.CancelFunc
	hurry     chan struct{} // closed to cut the stop's grace period short
	hurryOnce sync.Once
	wg        sync.WaitGroup // the replicas' supervisors
	leaving   atomic.Bool    // stopped by Detach: leave the processes running

	mu     sync.Mutex
	everUp bool // all replicas were ready at some point
	sample usageSample
}

// usageSample is the last CPU measurement of a group.
type usageSample struct {
	at    time.Time
	ticks map[int]uint64 // CPU time per pid then
	cpu   float64
}

// newGroup starts the replicas of a version; those in adopted, by index,
// take over a running process and count as ready at once if they were.
func (p *Process) newGroup(ref v1alpha1.VersionRef, spec procSpec, logf *logFile, adopted map[int]*adoptee) *group {
	ctx, cancel := context.WithCancel(context.Background())
	g := &group{p: p, ref: ref, spec: spec, logf: logf, ctx: ctx, cancel: cancel, hurry: make(chan struct{})}
	g.sample.at = p.clock.Now()
	for i := range spec.Replicas {
		r := &replica{g: g, index: i}
		if a := adopted[i]; a != nil {
			r.pid, r.port, r.ready = a.PID, a.Port, a.Ready
		}
		g.replicas = append(g.replicas, r)
	}
	g.wg.Add(len(g.replicas))
	for _, r := range g.replicas {
		go r.run(adopted[r.index])
	}
	return g
}

// stop stops the replicas gracefully; wait returns once they are gone.
func (g *group) stop() { g.cancel() }

// rush cuts the grace period of a stop short.
func (g *group) rush() { g.hurryOnce.Do(func() { close(g.hurry) }) }

func (g *group) wait() { g.wg.Wait() }

// readyURLs lists the replicas that receive traffic.
func (g *group) readyURLs() []*url.URL {
	var urls []*url.URL
	for _, r := range g.replicas {
		if s := r.status(); s.Ready && s.URL != nil {
			urls = append(urls, s.URL)
		}
	}
	return urls
}

// readyCount counts the replicas that receive traffic.
func (g *group) readyCount() int {
	n := 0
	for _, r := range g.replicas {
		if r.status().Ready {
			n++
		}
	}
	return n
}

// noteReady remembers that all replicas were ready once, after which none
// being ready means the version went down rather than is starting.
func (g *group) noteReady() {
	if g.readyCount() == len(g.replicas) {
		g.mu.Lock()
		g.everUp = true
		g.mu.Unlock()
	}
}

// health is the version's health as the engine sees it: down in a crash
// loop or when it served and no replica is ready any more; up when all
// replicas are ready; unknown while it starts.
func (g *group) health(now time.Time) (rollout.Health, string) {
	if reason := g.crashLoop(now); reason != "" {
		return rollout.HealthDown, reason
	}
	ready := g.readyCount()
	g.mu.Lock()
	everUp := g.everUp
	g.mu.Unlock()
	switch {
	case ready == len(g.replicas):
		return rollout.HealthUp, ""
	case ready == 0 && everUp:
		return rollout.HealthDown, "no ready replica: " + g.replicas[0].notReadyReason()
	}
	return rollout.HealthUnknown, ""
}

// crashLoop returns why a replica of the group is in a crash loop, or "".
func (g *group) crashLoop(now time.Time) string {
	for _, r := range g.replicas {
		if reason := r.crashLoop(now); reason != "" {
			return reason
		}
	}
	return ""
}

// usage measures the group's CPU (in % of one core, since the previous
// measurement) and memory (resident bytes, or % of the stated limits).
func (g *group) usage(now time.Time) (cpuPct, memPct float64, ok bool) {
	ticks := map[int]uint64{}
	var rss int64
	for _, r := range g.replicas {
		pid := r.status().PID
		if pid == 0 {
			continue
		}
		st, err := readProcStat(pid)
		if err != nil || !st.alive() {
			continue
		}
		m, err := readRSS(pid)
		if err != nil {
			continue
		}
		ticks[pid], rss = st.cpuTicks, rss+m
	}
	if len(ticks) == 0 {
		return 0, 0, false
	}
	g.mu.Lock()
	if elapsed := now.Sub(g.sample.at); elapsed >= minUsageInterval {
		var used uint64
		for pid, t := range ticks {
			// A pid not seen before started after the last sample, at 0.
			if prev := g.sample.ticks[pid]; t >= prev {
				used += t - prev
			}
		}
		g.sample = usageSample{at: now, ticks: ticks, cpu: float64(used) / userHZ / elapsed.Seconds() * 100}
	}
	cpuPct = g.sample.cpu
	g.mu.Unlock()
	memPct = float64(rss)
	if g.spec.MemoryLimitBytes > 0 {
		memPct = float64(rss) / float64(g.spec.MemoryLimitBytes*int64(len(ticks))) * 100
	}
	return cpuPct, memPct, true
}
