package target

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/rollout"
)

// Process defaults, used where ProcessConfig leaves a field zero.
const (
	DefaultRestartBackoff    = time.Second
	DefaultMaxRestartBackoff = 30 * time.Second
	DefaultCrashLoopRestarts = 3
	DefaultCrashLoopWindow   = time.Minute
)

// retryPeriod is how often a Process re-applies its desired state on its
// own, which retries failed pushes and closes the rollback window.
const retryPeriod = time.Second

// Endpoints is the part of the built-in proxy a process target steers: it
// routes each role to the ready replicas of one version and balances
// across them.
type Endpoints interface {
	// SetEndpoints routes role (RoleStable or RoleCanary) to
	// urls, the ready replicas of version. An empty version takes the role
	// away (canary only). A version with no urls has no ready replica right
	// now: a canary's share then goes to stable, and a stable cannot be
	// served. *proxy.Proxy implements it.
	SetEndpoints(role, version string, urls []*url.URL) error
}

// ErrNoUndo is returned by Undo outside the rollback window.
var ErrNoUndo = errors.New("nothing to undo: no previous stable version is kept warm")

// ErrProcessClosed is returned by a Process after Shutdown or Detach.
var ErrProcessClosed = errors.New("process target is shut down")

// ProcessConfig configures a Process. Zero backoffs, crash-loop settings
// and log bounds take the defaults above.
type ProcessConfig struct {
	// Dir is the target's own directory (one per rollout): the list of
	// running processes and the versions' logs live there. Required.
	Dir string
	// Specs returns the process spec of a version label, false if it has
	// none. Required; it must not call back into the Process.
	Specs func(version string) (v1alpha1.ProcessSpec, bool)
	// Endpoints receives the ready replicas of each role. Required.
	Endpoints Endpoints
	// OnChange is called when what Observe reports may have changed (a
	// replica became ready or exited, the stable switched), so the caller
	// can decide at once. It must not block. Optional.
	OnChange func()
	// UndoWindow is how long the previous stable keeps running after a
	// promotion so that Undo can switch back to it at once. Zero stops it
	// as soon as the proxy no longer routes to it.
	UndoWindow time.Duration
	// RestartBackoff is the wait before restarting a replica that exited;
	// it doubles with each exit in a row.
	RestartBackoff time.Duration
	// MaxRestartBackoff caps RestartBackoff's doubling.
	MaxRestartBackoff time.Duration
	// CrashLoopRestarts exits of a replica within CrashLoopWindow make a
	// crash loop: the version counts as down until the replica runs a
	// whole window without exiting.
	CrashLoopRestarts int
	// CrashLoopWindow is the window of CrashLoopRestarts; a replica that
	// ran this long also starts its backoff over.
	CrashLoopWindow time.Duration
	// MaxLogBytes bounds each version's log file (DefaultMaxLogBytes).
	MaxLogBytes int64
	// Logger receives the target's logs; nil discards them.
	Logger *slog.Logger
	// Clock times restarts, probes, grace periods and the rollback
	// window; nil is the wall clock.
	Clock rollout.Clock
	// Adopt, when not nil, makes NewProcess adopt the processes that the
	// Process of a previous daemon handed over with Detach instead of
	// stopping them. It holds the read ends of their output pipes by the
	// names Detach gave them. NewProcess owns the files from then on,
	// whether it adopts their processes or not.
	Adopt map[string]*os.File
	// HoldStops, when not nil, holds back the stopping of versions until
	// it is closed (or Shutdown is in a hurry): a daemon that took over
	// holds them while the daemon it took over from still forwards
	// requests with the routes it had.
	HoldStops <-chan struct{}
}

// Process is a target that runs each version as local processes: it
// starts their replicas on loopback ports, probes them, restarts them,
// routes the proxy's roles to the ready ones and drains old versions. Its
// methods are safe for concurrent use. A daemon handing over to the next
// leaves the processes running with Detach; the next one adopts them with
// ProcessConfig.Adopt.
type Process struct {
	cfg         ProcessConfig
	log         *slog.Logger
	clock       rollout.Clock
	state       *stateFile
	logs        *logSet
	probeClient *http.Client
	ports       portSet

	kickc      chan struct{}
	stopLoop   context.CancelFunc
	loopDone   chan struct{}
	draining   sync.WaitGroup // groups being stopped
	reconciles sync.Mutex     // one writer of routes at a time

	mu         sync.Mutex
	closed     bool
	groups     map[string]*group // running versions by label
	stopping   map[*group]bool
	stableWant string
	canaryWant string
	routed     map[string]route // what the proxy was last told, by role
	warm       *warmth
}

// route is what a role of the proxy points at.
type route struct {
	version string
	urls    []*url.URL
}

func (r route) equal(o route) bool {
	return r.version == o.version && slices.EqualFunc(r.urls, o.urls, func(a, b *url.URL) bool { return a.String() == b.String() })
}

// warmth is the previous stable kept running for Undo; the loop wakes when
// it ends.
type warmth struct {
	ref   v1alpha1.VersionRef
	until time.Time
}

// NewProcess prepares a process target in cfg.Dir. Processes that a
// previous run recorded there and that still run are stopped first (see
// stateFile.stopLeftovers): the daemon then starts its versions afresh.
//
// With cfg.Adopt, the processes of a hand-over are adopted instead (see
// Detach): same pids, same ports, no restart. Each adopted version runs
// again with the spec cfg.Specs gives its label, the roles and the warm
// previous stable are restored, and the proxy is told at once where the
// roles go, with the replicas that were ready counted ready: waiting for
// a probe would leave a gap with no ready stable. Probes then go on as
// usual. The output pipes are passed because the children write to them:
// reading them on keeps their output in the log and spares them SIGPIPE.
// An adopted process is not this daemon's child, so it cannot be waited
// for: its exit is watched with a pidfd (its exit status goes to its new
// parent and stays unknown), and it is restarted as a child. A recorded
// process with no pipe given, no spec any more, or that is not the one
// pipit started is stopped as after a crash.
func NewProcess(ctx context.Context, cfg ProcessConfig) (*Process, error) {
	if cfg.Dir == "" || cfg.Specs == nil || cfg.Endpoints == nil {
		return nil, errors.New("process target: Dir, Specs and Endpoints are required")
	}
	cfg.RestartBackoff = orDefault(cfg.RestartBackoff, DefaultRestartBackoff)
	cfg.MaxRestartBackoff = orDefault(cfg.MaxRestartBackoff, DefaultMaxRestartBackoff)
	cfg.CrashLoopRestarts = orDefault(cfg.CrashLoopRestarts, DefaultCrashLoopRestarts)
	cfg.CrashLoopWindow = orDefault(cfg.CrashLoopWindow, DefaultCrashLoopWindow)
	cfg.MaxLogBytes = orDefault(cfg.MaxLogBytes, DefaultMaxLogBytes)
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	clock := rollout.ClockOrSystem(cfg.Clock)
	logDir := filepath.Join(cfg.Dir, "logs")
	if err := os.MkdirAll(logDir, 0o700); err != nil {
		return nil, fmt.Errorf("process target: %w", err)
	}
	p := &Process{
		cfg: cfg, log: log, clock: clock, state: newStateFile(cfg.Dir, clock, log),
		logs:        &logSet{dir: logDir, max: cfg.MaxLogBytes, log: log, files: map[string]*logFile{}},
		probeClient: newProbeClient(),
		ports:       portSet{used: map[int]bool{}},
		kickc:       make(chan struct{}, 1),
		loopDone:    make(chan struct{}),
		groups:      map[string]*group{},
		stopping:    map[*group]bool{},
		routed:      map[string]route{},
	}
	start := p.state.stopLeftovers
	if cfg.Adopt != nil {
		start = p.adopt
	}
	if err := start(ctx); err != nil {
		return nil, fmt.Errorf("process target: %w", err)
	}
	loopCtx, cancel := context.WithCancel(context.Background())
	p.stopLoop = cancel
	go p.loop(loopCtx)
	return p, nil
}

func orDefault[T time.Duration | int | int64](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

// DeployCanary runs v as the canary; the canary role gets its replicas as
// they become ready.
func (p *Process) DeployCanary(_ context.Context, v v1alpha1.VersionRef) error {
	if err := p.want(v, func() { p.canaryWant = v.Version }); err != nil {
		return err
	}
	return p.reconcile()
}

// Promote makes v the stable version, starting it if it does not run (as
// for the first stable). The stable role switches to v once one of its
// replicas is ready — Observe's StableVersion says when — and only then is
// the previous stable kept warm for UndoWindow, then drained. The canary
// role stays as it is until the canary is retired, so no request is
// dropped in between.
func (p *Process) Promote(_ context.Context, v v1alpha1.VersionRef) error {
	if err := p.want(v, func() { p.stableWant = v.Version }); err != nil {
		return err
	}
	return p.reconcile()
}

// Install runs v as the stable version when there was none; Promote does
// just that for a first stable.
func (p *Process) Install(ctx context.Context, v v1alpha1.VersionRef) error { return p.Promote(ctx, v) }

// RetireCanary takes the canary role away from v and, unless v is the
// stable now, drains it: SIGTERM, the grace period, SIGKILL.
func (p *Process) RetireCanary(_ context.Context, v v1alpha1.VersionRef) error {
	p.mu.Lock()
	if p.canaryWant == v.Version {
		p.canaryWant = ""
	}
	p.mu.Unlock()
	return p.reconcile()
}

// Observe reports the version the stable role routes to and the canary's
// health: down in a crash loop (failed, even before it serves) or when no
// replica is ready any more, up when all its replicas are ready.
func (p *Process) Observe(context.Context) rollout.Observed {
	p.mu.Lock()
	o := rollout.Observed{StableVersion: p.routed[RoleStable].version, CanaryVersion: p.canaryWant}
	g := p.groups[p.canaryWant]
	p.mu.Unlock()
	if g != nil {
		now := p.clock.Now()
		o.CanaryHealth, o.CanaryReason = g.health(now)
		o.CanaryFailed = g.crashLoop(now) != ""
	}
	return o
}

// Undo switches the stable role back to the version a promotion replaced,
// at once, if that is still inside the rollback window, and drains the
// version it replaces. It returns the restored version, or ErrNoUndo.
// Promote of that previous version does the same (it is how the engine
// undoes); after the window, Promote starts it afresh instead.
func (p *Process) Undo(context.Context) (v1alpha1.VersionRef, error) {
	p.reconciles.Lock()
	defer p.reconciles.Unlock()
	now := p.clock.Now()
	p.mu.Lock()
	w := p.warm
	if p.closed || w == nil || !now.Before(w.until) {
		p.mu.Unlock()
		return v1alpha1.VersionRef{}, ErrNoUndo
	}
	r := routeOf(w.ref.Version, p.groups[w.ref.Version])
	if len(r.urls) == 0 {
		p.mu.Unlock()
		return v1alpha1.VersionRef{}, fmt.Errorf("undo: the previous stable %s has no ready replica", w.ref.Version)
	}
	prevWant := p.stableWant
	p.stableWant = w.ref.Version
	p.mu.Unlock()
	if err := p.push(RoleStable, r, now); err != nil {
		p.mu.Lock()
		p.stableWant = prevWant
		p.mu.Unlock()
		return v1alpha1.VersionRef{}, fmt.Errorf("undo: %w", err)
	}
	p.mu.Lock()
	p.settleLocked(now)
	p.mu.Unlock()
	p.changed()
	return w.ref, nil
}

// UndoUntil reports the version Undo would restore and until when.
func (p *Process) UndoUntil() (prev v1alpha1.VersionRef, until time.Time, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.warm == nil || !p.clock.Now().Before(p.warm.until) {
		return v1alpha1.VersionRef{}, time.Time{}, false
	}
	return p.warm.ref, p.warm.until, true
}

// Usage measures a running version: CPU in % of one core (summed over its
// replicas, averaged since the previous call), and resident memory in % of
// its stated limit (MemoryLimitBytes per replica) or, without a limit, in
// bytes. ok is false when no replica of the version runs.
func (p *Process) Usage(version string) (cpuPct, memPct float64, ok bool) {
	p.mu.Lock()
	g := p.groups[version]
	p.mu.Unlock()
	if g == nil {
		return 0, 0, false
	}
	return g.usage(p.clock.Now())
}

// Replicas describes the replicas of a running version.
func (p *Process) Replicas(version string) []ReplicaStatus {
	p.mu.Lock()
	g := p.groups[version]
	p.mu.Unlock()
	if g == nil {
		return nil
	}
	out := make([]ReplicaStatus, len(g.replicas))
	for i, r := range g.replicas {
		out[i] = r.status()
	}
	return out
}

// LogFile is the file that receives a version's output, one line per
// output line, prefixed with "[REPLICA] ".
func (p *Process) LogFile(version string) string { return logPath(p.logs.dir, version) }

// Shutdown stops every version gracefully and waits for them. When ctx
// ends first, the remaining processes are killed at once.
func (p *Process) Shutdown(ctx context.Context) error {
	p.mu.Lock()
	shutting := !p.closed
	if shutting {
		p.closeLocked()
	}
	p.mu.Unlock()
	p.stopLoop()
	<-p.loopDone
	p.waitDrains(ctx)
	if shutting {
		// Every process is gone: nothing is left to adopt, and the record
		// of a hand-over this Process adopted from goes too.
		p.state.reset(nil, nil)
	}
	return nil
}

// closeLocked closes the Process and drains every version.
func (p *Process) closeLocked() {
	p.closed = true
	for v, g := range p.groups {
		delete(p.groups, v)
		p.drainLocked(g)
	}
	p.clearWarmLocked()
}

// waitDrains waits for the versions being stopped; when ctx ends first,
// they are killed at once.
func (p *Process) waitDrains(ctx context.Context) {
	done := make(chan struct{})
	go func() { p.draining.Wait(); close(done) }()
	select {
	case <-done:
		return
	case <-ctx.Done():
	}
	p.mu.Lock()
	for g := range p.stopping {
		g.rush()
	}
	p.mu.Unlock()
	<-done
}

// want starts v if needed and records a desired role for it.
func (p *Process) want(v v1alpha1.VersionRef, set func()) error {
	if v.Version == "" {
		return errors.New("process target: a version needs a label")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return ErrProcessClosed
	}
	if _, ok := p.groups[v.Version]; !ok {
		ps, err := p.specOf(v.Version)
		if err != nil {
			return err
		}
		if err := p.startGroupLocked(v, ps, nil); err != nil {
			return err
		}
	}
	set()
	return nil
}

// specOf resolves the process spec of a version label.
func (p *Process) specOf(version string) (procSpec, error) {
	s, ok := p.cfg.Specs(version)
	if !ok {
		return procSpec{}, fmt.Errorf("version %s: no process spec", version)
	}
	ps, err := resolveProcessSpec(s)
	if err != nil {
		return procSpec{}, fmt.Errorf("version %s: %w", version, err)
	}
	return ps, nil
}

// startGroupLocked runs v with spec ps, adopting the processes of adopted.
func (p *Process) startGroupLocked(v v1alpha1.VersionRef, ps procSpec, adopted map[int]*adoptee) error {
	lf, err := p.logs.acquire(v.Version)
	if err != nil {
		return fmt.Errorf("version %s: %w", v.Version, err)
	}
	p.log.Info("starting version", "version", v.Version, "replicas", ps.Replicas, "adopted", len(adopted), "log", lf.path)
	p.groups[v.Version] = p.newGroup(v, ps, lf, adopted)
	return nil
}
