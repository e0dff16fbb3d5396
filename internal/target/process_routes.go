package target

import (
	"context"
	"errors"
	"sync"
	"time"
)

// loop re-applies the desired state whenever a replica's state changes,
// every retryPeriod, and when the rollback window ends.
func (p *Process) loop(ctx context.Context) {
	defer close(p.loopDone)
	t := p.clock.NewTimer(retryPeriod)
	defer t.Stop()
	var lastErr string
	for {
		kicked := false
		select {
		case <-ctx.Done():
			return
		case <-p.kickc:
			kicked = true
		case <-t.C():
		}
		err := p.reconcile()
		if msg := errString(err); msg != lastErr {
			if err != nil {
				p.log.Warn("cannot route the proxy to the process replicas; retrying", "err", err)
			}
			lastErr = msg
		}
		if kicked {
			p.changed()
		}
		t.Reset(p.nextRetry())
	}
}

// nextRetry is the wait until the loop re-applies the desired state on its
// own: retryPeriod, or less when the rollback window ends before.
func (p *Process) nextRetry() time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.warm != nil && !p.closed {
		if left := p.warm.until.Sub(p.clock.Now()); left < retryPeriod {
			return max(left, 0)
		}
	}
	return retryPeriod
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// kick asks the loop to re-apply the desired state soon.
func (p *Process) kick() {
	select {
	case p.kickc <- struct{}{}:
	default:
	}
}

func (p *Process) changed() {
	if p.cfg.OnChange != nil {
		p.cfg.OnChange()
	}
}

// reconcile tells the proxy where each role goes now, then stops the
// versions nothing refers to any more. Versions are stopped only after the
// proxy stopped routing to them.
func (p *Process) reconcile() error {
	p.reconciles.Lock()
	defer p.reconciles.Unlock()
	now := p.clock.Now()
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	stable := p.routed[RoleStable].version
	if p.stableWant != stable {
		// Switch once the new stable can serve; the first stable at once.
		if g := p.groups[p.stableWant]; stable == "" || (g != nil && len(g.readyURLs()) > 0) {
			stable = p.stableWant
		}
	}
	want := map[string]route{
		RoleStable: routeOf(stable, p.groups[stable]),
		RoleCanary: routeOf(p.canaryWant, p.groups[p.canaryWant]),
	}
	p.mu.Unlock()
	err := errors.Join(p.push(RoleStable, want[RoleStable], now), p.push(RoleCanary, want[RoleCanary], now))
	p.mu.Lock()
	p.settleLocked(now)
	p.mu.Unlock()
	return err
}

// routeOf is where a role pointing at version goes: its ready replicas.
func routeOf(version string, g *group) route {
	r := route{version: version}
	if g != nil {
		r.urls = g.readyURLs()
	}
	return r
}

// push tells the proxy about a role's route if it changed. The caller
// holds p.reconciles.
func (p *Process) push(role string, r route, now time.Time) error {
	p.mu.Lock()
	prev := p.routed[role]
	p.mu.Unlock()
	if prev.equal(r) {
		return nil
	}
	if err := p.cfg.Endpoints.SetEndpoints(role, r.version, r.urls); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.routed[role] = r
	if role == RoleStable && prev.version != r.version {
		p.stableSwitchedLocked(prev.version, r.version, now)
	}
	return nil
}

// stableSwitchedLocked keeps the replaced stable warm for Undo. Going back
// to the warm version (an undo) keeps nothing: the undone one is drained.
func (p *Process) stableSwitchedLocked(old, cur string, now time.Time) {
	if p.warm != nil && p.warm.ref.Version == cur {
		p.clearWarmLocked()
		return
	}
	g := p.groups[old]
	if g == nil || p.cfg.UndoWindow <= 0 {
		return
	}
	p.clearWarmLocked()
	p.warm = &warmth{ref: g.ref, until: now.Add(p.cfg.UndoWindow)}
	p.kick() // the loop's next wait ends with the window
	p.log.Info("keeping the previous stable warm for undo", "version", old, "until", p.warm.until)
}

func (p *Process) clearWarmLocked() { p.warm = nil }

// settleLocked drains every version that is neither wanted, nor routed
// to, nor kept warm.
func (p *Process) settleLocked(now time.Time) {
	if p.closed {
		return
	}
	keep := map[string]bool{
		p.stableWant: true, p.canaryWant: true,
		p.routed[RoleStable].version: true, p.routed[RoleCanary].version: true,
	}
	if p.warm != nil {
		if now.Before(p.warm.until) {
			keep[p.warm.ref.Version] = true
		} else {
			p.clearWarmLocked()
		}
	}
	for v, g := range p.groups {
		if !keep[v] {
			delete(p.groups, v)
			p.drainLocked(g)
		}
	}
}

// drainLocked stops g in the background: SIGTERM, grace period, SIGKILL.
func (p *Process) drainLocked(g *group) {
	p.log.Info("stopping version", "version", g.ref.Version)
	p.stopping[g] = true
	p.draining.Add(1)
	go func() {
		defer p.draining.Done()
		if p.cfg.HoldStops != nil {
			select {
			case <-p.cfg.HoldStops:
			case <-g.hurry:
			}
		}
		g.stop()
		g.wait()
		p.logs.release(g.ref.Version, g.logf)
		p.mu.Lock()
		delete(p.stopping, g)
		p.mu.Unlock()
	}()
}

// portSet remembers the ports given to replicas, so two replicas starting
// at the same moment never get the same one.
type portSet struct {
	mu   sync.Mutex
	used map[int]bool
}

func (s *portSet) take() (int, error) {
	for range 8 {
		port, err := freePort()
		if err != nil {
			return 0, err
		}
		s.mu.Lock()
		if !s.used[port] {
			s.used[port] = true
			s.mu.Unlock()
			return port, nil
		}
		s.mu.Unlock()
	}
	return 0, errors.New("only ports in use were offered")
}

// mark takes a port an adopted replica listens on already.
func (s *portSet) mark(port int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.used[port] = true
}

func (s *portSet) release(port int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.used, port)
}
