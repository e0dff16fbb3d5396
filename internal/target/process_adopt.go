package target

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/pipit-dev/pipit/api/v1alpha1"
)

// errAdoptedExit is how an adopted process ends: it is not this daemon's
// child, so its exit status goes to its new parent.
var errAdoptedExit = errors.New("exited (exit status unknown: the process was adopted from a previous daemon)")

// adoptee is a replica's process handed over from one daemon to the next.
type adoptee struct {
	stateEntry
	out *os.File // the read end of its output pipe
}

// PipeName is the name under which Detach returns the output pipe of the
// process pid, and under which ProcessConfig.Adopt expects it.
func PipeName(pid int) string { return "pid:" + strconv.Itoa(pid) }

// Detach hands the running processes over to the daemon that takes over:
// it stops supervising them without stopping any. No probe, restart or
// route push follows; versions being drained are waited for (killed when
// ctx ends first). The state file then records, for each process left
// running, its version, replica, port and readiness, and what the Process
// wanted: the roles, the routes and the version kept warm for Undo. The
// read ends of the processes' output pipes are returned by PipeName, for
// the caller to pass to the next daemon's ProcessConfig.Adopt (a daemon
// that cannot pass one should close it: its process then gets SIGPIPE on
// its next write, and is stopped as a leftover by the next daemon anyway).
// The Process is closed afterwards: its methods return ErrProcessClosed
// and Shutdown does nothing. If the state file cannot be written, Detach
// closes the pipes and returns the error: the processes then run on
// unsupervised, recorded as started, and the next daemon stops them as
// after a crash.
func (p *Process) Detach(ctx context.Context) (map[string]*os.File, error) {
	p.reconciles.Lock()
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		p.reconciles.Unlock()
		return nil, ErrProcessClosed
	}
	p.closed = true
	h := p.handoverLocked()
	groups := slices.Collect(maps.Values(p.groups))
	clear(p.groups)
	for _, g := range groups {
		g.leaving.Store(true)
		g.stop()
	}
	p.mu.Unlock()
	p.reconciles.Unlock()
	p.stopLoop()
	<-p.loopDone
	p.waitDrains(ctx)
	var left []stateEntry
	pipes := map[string]*os.File{}
	for _, g := range groups {
		g.wait()
		for _, r := range g.replicas {
			if a := r.handover; a != nil { // the supervisor has returned
				left = append(left, a.stateEntry)
				pipes[PipeName(a.PID)] = a.out
			}
		}
		p.logs.release(g.ref.Version, g.logf)
	}
	if err := p.state.handOver(left, h); err != nil {
		closeFiles(pipes)
		return nil, fmt.Errorf("process target: recording the hand-over: %w", err)
	}
	p.log.Info("handed the processes over", "processes", len(left))
	return pipes, nil
}

// handoverLocked is what the next daemon needs to carry on.
func (p *Process) handoverLocked() *handoverRecord {
	h := &handoverRecord{
		StableWant: p.stableWant, CanaryWant: p.canaryWant,
		Routed: map[string]string{RoleStable: p.routed[RoleStable].version, RoleCanary: p.routed[RoleCanary].version},
	}
	for _, g := range p.groups {
		h.Versions = append(h.Versions, g.ref)
	}
	if p.warm != nil {
		h.Warm, h.WarmUntil = &p.warm.ref, p.warm.until
	}
	return h
}

// adopt takes over the processes a Detach recorded and whose pipes
// cfg.Adopt holds, stops the other recorded ones, and routes the roles
// as they were routed. It runs in NewProcess, before the loop starts.
func (p *Process) adopt(ctx context.Context) error {
	rec, err := p.state.read()
	if err != nil {
		closeFiles(p.cfg.Adopt)
		return err
	}
	h := cmp.Or(rec.Handover, &handoverRecord{})
	adopted, specs, stop := p.sortAdoptees(rec.Processes)
	var kept []stateEntry
	for _, byIndex := range adopted {
		for _, a := range byIndex {
			kept = append(kept, a.stateEntry)
		}
	}
	if err := p.state.stop(ctx, stop); err != nil {
		closeAdoptees(adopted)
		return err
	}
	p.state.reset(kept, rec.Handover) // before replicas start and add theirs
	p.mu.Lock()
	for v, byIndex := range adopted {
		ref := v1alpha1.VersionRef{Version: v}
		if i := slices.IndexFunc(h.Versions, func(r v1alpha1.VersionRef) bool { return r.Version == v }); i >= 0 {
			ref = h.Versions[i]
		}
		if err := p.startGroupLocked(ref, specs[v], byIndex); err != nil {
			p.closeLocked()
			p.mu.Unlock()
			p.abandon(ctx, adopted)
			return err
		}
		delete(adopted, v)
	}
	p.stableWant, p.canaryWant = h.StableWant, h.CanaryWant
	p.mu.Unlock()
	p.restoreRoutes(h)
	return nil
}

// abandon stops the adopted processes of the versions that did not
// start, and waits for those that did to stop.
func (p *Process) abandon(ctx context.Context, notStarted map[string]map[int]*adoptee) {
	var stop []stateEntry
	for _, byIndex := range notStarted {
		for _, a := range byIndex {
			stop = append(stop, a.stateEntry)
		}
	}
	closeAdoptees(notStarted)
	if err := p.state.stop(ctx, stop); err != nil {
		p.log.Warn("cannot stop the processes of the previous daemon", "err", err)
	}
	p.waitDrains(ctx)
}

func closeAdoptees(adopted map[string]map[int]*adoptee) {
	for _, byIndex := range adopted {
		for _, a := range byIndex {
			_ = a.out.Close()
		}
	}
}

// restoreRoutes tells the proxy where the roles went before the hand-over
// and keeps the previous stable warm as it was.
func (p *Process) restoreRoutes(h *handoverRecord) {
	p.reconciles.Lock()
	defer p.reconciles.Unlock()
	now := p.clock.Now()
	for _, role := range []string{RoleStable, RoleCanary} {
		p.mu.Lock()
		r := routeOf(h.Routed[role], p.groups[h.Routed[role]])
		p.mu.Unlock()
		if err := p.push(role, r, now); err != nil {
			p.log.Warn("cannot route the proxy to the adopted replicas; retrying", "role", role, "err", err)
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if h.Warm != nil && p.groups[h.Warm.Version] != nil {
		p.warm = &warmth{ref: *h.Warm, until: h.WarmUntil}
	}
	p.kick() // settle what is not wanted any more
}

// sortAdoptees sorts the recorded processes into those to adopt, by
// version and replica index, and those to stop. It returns the specs of
// the adopted versions and closes the pipes it does not use.
func (p *Process) sortAdoptees(recorded []stateEntry) (adopted map[string]map[int]*adoptee, specs map[string]procSpec, stop []stateEntry) {
	pipes := maps.Clone(p.cfg.Adopt)
	adopted, specs = map[string]map[int]*adoptee{}, map[string]procSpec{}
	for _, e := range recorded {
		f := pipes[PipeName(e.PID)]
		delete(pipes, PipeName(e.PID))
		a, why := p.adoptable(e, f, specs)
		if a != nil && adopted[e.Version][e.Replica] != nil {
			_ = a.out.Close()
			a, why = nil, "another process was recorded for the same replica"
		}
		if a == nil {
			p.log.Info("not adopting a process of the previous daemon", "pid", e.PID, "version", e.Version, "reason", why)
			if f != nil {
				_ = f.Close()
			}
			stop = append(stop, e)
			continue
		}
		if adopted[e.Version] == nil {
			adopted[e.Version] = map[int]*adoptee{}
		}
		adopted[e.Version][e.Replica] = a
	}
	closeFiles(pipes)
	return adopted, specs, stop
}

// adoptable returns the adoptee of e with pipe f, or why it cannot be
// adopted. It resolves the specs of versions into specs.
func (p *Process) adoptable(e stateEntry, f *os.File, specs map[string]procSpec) (*adoptee, string) {
	switch {
	case f == nil:
		return nil, "no output pipe was passed"
	case e.Port <= 0:
		return nil, "not handed over (no port recorded)"
	case !stillRunning(e):
		return nil, "it is not the process pipit started, or it exited"
	}
	ps, ok := specs[e.Version]
	if !ok {
		var err error
		if ps, err = p.specOf(e.Version); err != nil {
			return nil, err.Error()
		}
		specs[e.Version] = ps
	}
	if e.Replica < 0 || e.Replica >= ps.Replicas {
		return nil, fmt.Sprintf("replica %d of %d", e.Replica, ps.Replicas)
	}
	out, err := pollable(f)
	if err != nil {
		return nil, err.Error()
	}
	return &adoptee{stateEntry: e, out: out}, ""
}

// pollable returns f as a file the runtime poller drives, so that read
// deadlines can stop a read, and closes f. A descriptor received from
// another process comes in blocking mode, or shares a description another
// file set blocking.
func pollable(f *os.File) (*os.File, error) {
	defer f.Close()
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("output pipe %s: %w", f.Name(), err)
	}
	fd := -1
	ctrlErr := rc.Control(func(old uintptr) { fd, err = unix.FcntlInt(old, unix.F_DUPFD_CLOEXEC, 0) })
	if err = cmp.Or(ctrlErr, err); err == nil {
		if err = unix.SetNonblock(fd, true); err != nil {
			_ = unix.Close(fd)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("output pipe %s: %w", f.Name(), err)
	}
	return os.NewFile(uintptr(fd), f.Name()), nil
}

// watchExit watches a process that is not this daemon's child: its pidfd
// becomes readable when it exits. exited then receives errAdoptedExit;
// unwatch ends the watch.
func watchExit(pid int) (exited <-chan error, unwatch func()) {
	ch := make(chan error, 1)
	fd, err := unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK)
	if err != nil {
		ch <- fmt.Errorf("watching the adopted process: %w", err)
		return ch, func() {}
	}
	f := os.NewFile(uintptr(fd), "pidfd:"+strconv.Itoa(pid))
	go func() { ch <- waitReadable(f) }()
	return ch, func() { _ = f.Close() }
}

// waitReadable waits until pidfd f is readable and returns
// errAdoptedExit, or another error once f is closed.
func waitReadable(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var pollErr error
	err = rc.Read(func(fd uintptr) bool {
		n, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, 0)
		if err != nil && !errors.Is(err, unix.EINTR) {
			pollErr = err
			return true
		}
		return n > 0
	})
	if err = cmp.Or(err, pollErr); err != nil {
		return err
	}
	return errAdoptedExit
}

func closeFiles(files map[string]*os.File) {
	for _, f := range files {
		_ = f.Close()
	}
}
