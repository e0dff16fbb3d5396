package target

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/pipit-dev/pipit/internal/rollout"
)

// exitWaitDelay bounds how long the rest of a replica's output is read
// after it exited: its children may hold the pipe open.
const exitWaitDelay = time.Second

// replica supervises one process of a version: it starts it on a fresh
// port, probes it, restarts it with backoff when it exits or fails its
// liveness probe, and stops it gracefully when the version is stopped.
type replica struct {
	g     *group
	index int

	mu          sync.Mutex
	pid         int // 0 while not running
	port        int
	attemptAt   time.Time // last start attempt
	ready       bool
	restarts    int
	consecutive int         // exits since it last ran a whole crash-loop window
	exits       []time.Time // within the crash-loop window
	lastExit    string
	lastProbe   string   // last readiness failure
	loopReason  string   // set while in a crash loop
	handover    *adoptee // the process left running by Detach
	// becameReady is closed when the running process is first ready.
	becameReady chan struct{}
}

// ReplicaStatus describes one replica of a version, for status displays.
type ReplicaStatus struct {
	// Index numbers the replicas of a version from 0; log lines carry it.
	Index int
	// PID of the running process; 0 while it is restarting.
	PID int
	// URL the replica serves on while running.
	URL *url.URL
	// Ready means it passes its readiness probe and receives traffic.
	Ready bool
	// Restarts counts its exits so far.
	Restarts int
	// LastExit says how it last exited. The exit status of a process
	// adopted from a previous daemon is unknown: it was not this daemon's
	// child.
	LastExit string
}

func (r *replica) status() ReplicaStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := ReplicaStatus{Index: r.index, PID: r.pid, Ready: r.ready, Restarts: r.restarts, LastExit: r.lastExit}
	if r.pid != 0 {
		s.URL = replicaURL(r.port)
	}
	return s
}

func replicaURL(port int) *url.URL { return &url.URL{Scheme: "http", Host: loopback(port)} }

// run keeps the replica running until its version is stopped. Its first
// process is adopted when adopted is not nil.
func (r *replica) run(adopted *adoptee) {
	defer r.g.wg.Done()
	for {
		reason, stopped := r.runOnce(adopted)
		adopted = nil
		if stopped || r.g.ctx.Err() != nil {
			return
		}
		delay := r.exited(reason, r.g.p.clock.Now())
		r.g.p.log.Warn("process exited; restarting", "version", r.g.ref.Version, "replica", r.index, "reason", reason, "after", delay)
		r.g.p.kick()
		if !sleepCtx(r.g.ctx, r.g.p.clock, delay) {
			return
		}
	}
}

// running is a replica's process while it runs: started here or adopted.
type running struct {
	pid, port int
	ready     bool         // its readiness verdict at the start
	exited    <-chan error // receives once, when it exits
	unwatch   func()       // stops watching it; nil for a child
	out       *outputReader
}

// runOnce starts the process, or takes over the adopted one, and
// supervises it until it exits, fails its liveness probe or is stopped.
// stopped reports the last case. An adopted process is supervised even if
// the version is stopped already: stopping it is up to the supervisor.
func (r *replica) runOnce(adopted *adoptee) (reason string, stopped bool) {
	g, p := r.g, r.g.p
	if g.ctx.Err() != nil && adopted == nil {
		return "", true
	}
	r.mu.Lock()
	r.attemptAt = p.clock.Now()
	r.mu.Unlock()
	rp, err := r.start(adopted)
	if err != nil {
		return err.Error(), false
	}
	defer p.ports.release(rp.port)
	reason, stopped = r.supervise(rp)
	if rp.unwatch != nil {
		rp.unwatch()
	}
	if stopped && g.leaving.Load() {
		r.leave(rp)
		return "", true
	}
	// The leader is gone; children it left in its group must not hold the
	// port or outlive pipit.
	_ = signalGroup(rp.pid, syscall.SIGKILL)
	rp.out.finish()
	r.mu.Lock()
	r.pid, r.ready = 0, false
	r.mu.Unlock()
	p.state.remove(rp.pid)
	p.kick()
	return reason, stopped
}

// start starts the replica's process on a fresh port, or takes over the
// adopted one on its port.
func (r *replica) start(adopted *adoptee) (*running, error) {
	p := r.g.p
	if adopted != nil {
		p.ports.mark(adopted.Port)
		exited, unwatch := watchExit(adopted.PID)
		return &running{
			pid: adopted.PID, port: adopted.Port, ready: adopted.Ready,
			exited: exited, unwatch: unwatch, out: readOutput(adopted.out, r.lineWriter()),
		}, nil
	}
	port, err := p.ports.take()
	if err != nil {
		return nil, errors.New("no free port: " + err.Error())
	}
	rp, err := r.startOn(port)
	if err != nil {
		p.ports.release(port)
	}
	return rp, err
}

// startOn starts the replica's process on port. Its output goes to a pipe
// pipit made (see outputReader).
func (r *replica) startOn(port int) (*running, error) {
	cmd, err := r.command(port)
	if err != nil {
		return nil, err
	}
	rd, wr, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("output pipe: %w", err)
	}
	cmd.Stdout, cmd.Stderr = wr, wr
	err = cmd.Start()
	_ = wr.Close() // the child has its own copy
	if err != nil {
		_ = rd.Close()
		return nil, errors.New("starting: " + err.Error())
	}
	pid := cmd.Process.Pid
	r.g.p.state.add(pid, r.g.ref.Version)
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	return &running{pid: pid, port: port, exited: exited, out: readOutput(rd, r.lineWriter())}, nil
}

// leave records the process left running for another daemon, with the
// read end of its output pipe.
func (r *replica) leave(rp *running) {
	out := rp.out.detach()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.handover = &adoptee{
		stateEntry: stateEntry{PID: rp.pid, Version: r.g.ref.Version, Replica: r.index, Port: rp.port, Ready: r.ready},
		out:        out,
	}
}

// supervise probes the process until it exits, fails its liveness probe
// or its version is stopped, and returns once it is gone, or left running
// when the version is being handed over.
func (r *replica) supervise(rp *running) (reason string, stopped bool) {
	g := r.g
	becameReady := make(chan struct{})
	r.mu.Lock()
	r.pid, r.port, r.ready, r.becameReady = rp.pid, rp.port, rp.ready, becameReady
	if rp.ready {
		close(becameReady)
		r.becameReady = nil
	}
	r.mu.Unlock()
	if rp.ready {
		g.noteReady()
	}
	probeCtx, stopProbes := context.WithCancel(g.ctx)
	var probes sync.WaitGroup
	defer probes.Wait()
	defer stopProbes()
	liveFail := make(chan error, 1)
	probes.Go(func() { r.watchReadiness(probeCtx, rp.port, rp.ready) })
	if g.spec.liveness != nil {
		probes.Go(func() { r.watchLiveness(probeCtx, rp.port, becameReady, liveFail) })
	}
	select {
	case err := <-rp.exited:
		return exitReason(err), false
	case err := <-liveFail:
		// No probe may make it ready again while it stops.
		stopProbes()
		probes.Wait()
		r.setReady(false, nil)
		terminate(rp.pid, rp.exited, g.p.clock.NewTimer(g.spec.StopGracePeriod), g.hurry)
		return "liveness probe failed: " + err.Error(), false
	case <-g.ctx.Done():
		if !g.leaving.Load() {
			terminate(rp.pid, rp.exited, g.p.clock.NewTimer(g.spec.StopGracePeriod), g.hurry)
		}
		return "", true
	}
}

// command builds the process of this replica on port. It runs in its own
// process group so that stopping it reaches the children it starts.
func (r *replica) command(port int) (*exec.Cmd, error) {
	g := r.g
	args, env, err := g.spec.Render(g.ref.Version, port)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(g.spec.Command, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Dir = g.spec.WorkingDir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	return cmd, nil
}

func (r *replica) lineWriter() *lineWriter {
	return &lineWriter{lf: r.g.logf, prefix: "[" + strconv.Itoa(r.index) + "] "}
}

// terminate stops a process group gracefully: SIGTERM, then SIGKILL once
// grace fires or as soon as hurry is closed. It returns once the leader
// exited.
func terminate(pgid int, exited <-chan error, grace rollout.Timer, hurry <-chan struct{}) {
	_ = signalGroup(pgid, syscall.SIGTERM)
	defer grace.Stop()
	select {
	case <-exited:
		return
	case <-grace.C():
	case <-hurry:
	}
	_ = signalGroup(pgid, syscall.SIGKILL)
	<-exited
}

func exitReason(err error) string {
	var ee *exec.ExitError
	switch {
	case err == nil:
		return "exit status 0"
	case errors.As(err, &ee):
		return ee.Error()
	}
	return err.Error()
}

// watchReadiness probes readiness; an adopted replica starts with the
// verdict it had, so that it keeps its traffic unless it fails the probe.
func (r *replica) watchReadiness(ctx context.Context, port int, ready bool) {
	pr := r.g.spec.readiness
	if pr == nil {
		if !ready && waitForPort(ctx, r.g.p.clock, port) {
			r.setReady(true, nil)
		}
		return
	}
	pr.loop(ctx, r.g.p.clock, r.g.p.probeClient, port, ready, r.setReady)
}

// watchLiveness probes liveness once the process was first ready: a slow
// start is the readiness probe's business, not a reason to restart.
func (r *replica) watchLiveness(ctx context.Context, port int, becameReady <-chan struct{}, failed chan<- error) {
	select {
	case <-ctx.Done():
		return
	case <-becameReady:
	}
	r.g.spec.liveness.loop(ctx, r.g.p.clock, r.g.p.probeClient, port, true, func(passing bool, err error) {
		if !passing {
			select {
			case failed <- err:
			default:
			}
		}
	})
}

// setReady records a readiness verdict; a change moves traffic.
func (r *replica) setReady(ready bool, err error) {
	r.mu.Lock()
	if err != nil {
		r.lastProbe = "readiness probe failed: " + err.Error()
	}
	changed := r.ready != ready && r.pid != 0
	if changed {
		r.ready = ready
		if ready && r.becameReady != nil {
			close(r.becameReady)
			r.becameReady = nil
		}
	}
	r.mu.Unlock()
	if changed {
		if ready {
			r.g.noteReady()
		}
		r.g.p.kick()
	}
}

// exited records an exit and returns how long to wait before the restart.
func (r *replica) exited(reason string, now time.Time) time.Duration {
	cfg := &r.g.p.cfg
	r.mu.Lock()
	defer r.mu.Unlock()
	r.restarts++
	r.lastExit = reason
	if now.Sub(r.attemptAt) >= cfg.CrashLoopWindow {
		r.consecutive = 0 // it ran long enough: start the backoff over
	}
	r.consecutive++
	cut := now.Add(-cfg.CrashLoopWindow)
	r.exits = append(dropBefore(r.exits, cut), now)
	if len(r.exits) >= cfg.CrashLoopRestarts {
		r.loopReason = fmt.Sprintf("crash loop: exited %d times in %s: %s", len(r.exits), shortDuration(cfg.CrashLoopWindow), reason)
	}
	return backoff(cfg.RestartBackoff, cfg.MaxRestartBackoff, r.consecutive)
}

// crashLoop returns the crash-loop reason, clearing it once the replica
// has run a whole window without exiting.
func (r *replica) crashLoop(now time.Time) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.loopReason != "" && r.pid != 0 && now.Sub(r.attemptAt) >= r.g.p.cfg.CrashLoopWindow {
		r.loopReason = ""
	}
	return r.loopReason
}

// notReadyReason says why a replica does not receive traffic.
func (r *replica) notReadyReason() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.pid == 0 && r.lastExit != "":
		return "restarting after " + r.lastExit
	case r.lastProbe != "":
		return r.lastProbe
	}
	return "starting"
}

func dropBefore(ts []time.Time, cut time.Time) []time.Time {
	i := 0
	for i < len(ts) && ts[i].Before(cut) {
		i++
	}
	return append(ts[:0], ts[i:]...)
}

// backoff is base doubled for each exit in a row after the first, capped.
func backoff(base, ceiling time.Duration, n int) time.Duration {
	d := base
	for i := 1; i < n && d < ceiling; i++ {
		d *= 2
	}
	return min(d, ceiling)
}

// shortDuration prints 1m rather than 1m0s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
