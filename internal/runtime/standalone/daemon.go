// Package standalone is pipit's embedded runtime: one process that runs the
// rollout engine, a built-in traffic-splitting proxy per rollout, the
// control API and its state in a SQLite file. It needs no Kubernetes and no
// service mesh.
package standalone

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/controlapi"
	"github.com/pipit-dev/pipit/internal/engine"
	"github.com/pipit-dev/pipit/internal/proxy/route"
	"github.com/pipit-dev/pipit/internal/rollout"
	"github.com/pipit-dev/pipit/internal/runtime/standalone/handover"
	"github.com/pipit-dev/pipit/internal/spec"
	"github.com/pipit-dev/pipit/internal/store"
	"github.com/pipit-dev/pipit/internal/telemetry"
)

// DefaultAPIAddr is where the control API listens unless told otherwise.
const DefaultAPIAddr = "127.0.0.1:7433"

// Source is one rollout file: its name for messages, and its content.
type Source struct {
	File string
	Data []byte
}

// Config configures a daemon.
type Config struct {
	// Sources are the rollout files to run.
	Sources []Source
	// Read reads the rollout files again, for Reload; nil refuses
	// reloads.
	Read func() ([]Source, error)
	// StateDir holds the database, the token, the sticky cookies' keys
	// and the API address, and under processes/ what process targets
	// keep: their processes' list and logs.
	StateDir string
	// APIAddr is the control API's listen address; ":0" picks a free port.
	APIAddr string
	// APITLS serves the control API over TLS; nil serves plain HTTP,
	// which Start refuses on an address other than loopback unless
	// Insecure is set: the API carries bearer tokens.
	APITLS *TLSFiles
	// Insecure allows plain HTTP on an address other than loopback.
	Insecure bool
	// OFREPAddr is where flag rollouts are served over OFREP; empty
	// serves none, and then refuses flag rollouts.
	OFREPAddr string
	// Clock is the one clock of the daemon and everything it runs; nil
	// is the wall clock.
	Clock rollout.Clock
	// Retention bounds the history kept in the state; the zero value
	// keeps it all.
	Retention Retention
	// Logger receives the daemon's logs; nil discards them.
	Logger *slog.Logger
	// Inherit is what the daemon starts from instead of opening it
	// itself: sockets systemd or a previous daemon passed, and the
	// processes it adopts. Start takes it over whether it fails or not.
	Inherit *Inheritance
}

// ConfigError is returned by Start and Reload when the rollout files are
// refused; nothing was started or changed. It is a
// controlapi.ErrInvalidConfig.
type ConfigError struct{ Err error }

func (e *ConfigError) Error() string { return e.Err.Error() }
func (e *ConfigError) Unwrap() error { return e.Err }

// Is makes a ConfigError match controlapi.ErrInvalidConfig, which the
// control API answers with 422 and the message.
func (e *ConfigError) Is(target error) bool { return target == controlapi.ErrInvalidConfig }

// Daemon is a running standalone runtime. It implements
// controlapi.Backend in process.
type Daemon struct {
	db *store.Store
	// mu guards rollouts, names and frontends, which a reload changes
	// while the control API and the metrics read them.
	mu        sync.RWMutex
	rollouts  map[string]*managed
	names     []string
	frontends []*frontend
	// reloadMu serialises reloads.
	reloadMu  sync.Mutex
	read      func() ([]Source, error)
	listeners listenerSet
	reg       *prometheus.Registry
	metrics   *telemetry.Rollouts
	env       env
	// runCtx bounds deciding: the rollout loops, hooks, health checks
	// and notifications under it, and the pruning that wg waits for;
	// cancel ends it.
	runCtx context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	// serveCtx bounds serving: the listeners, which serve on until the
	// daemon stops or drains after a hand-over, and whose goroutines
	// serving counts; stopServing ends it.
	serveCtx    context.Context
	stopServing context.CancelFunc
	serving     sync.WaitGroup
	// accepting is done once every proxy listener of the start accepts.
	accepting sync.WaitGroup
	api       *http.Server
	apiLn     net.Listener
	apiTLS    *tls.Config // nil: the control API speaks plain HTTP
	apiName   string      // the control API's address as it was given
	// ofrep serves the flag rollouts on ofrepLn, whose address was given
	// as ofrepName; nil without --ofrep.
	ofrep     *http.Server
	ofrepLn   net.Listener
	ofrepName string
	// handoverLn answers a daemon that asks to take over; handovers
	// delivers the outcome. handingOver refuses reloads once it began.
	handoverLn  *handover.Listener
	handovers   chan HandOver
	handingOver bool
	// handedTo is the hand-over this daemon made, told once it drained.
	handedTo *handover.Outgoing
	// stopsHeld holds back the stopping of processes until the daemon
	// this one took over from has drained; nil when it took over from
	// none.
	stopsHeld chan struct{}
	log       *slog.Logger
	stateDir  string
	clock     rollout.Clock
	retention Retention
	// keysMu serialises key rotations, so that each keeps the key the
	// one before made, and reloads, which build proxies with env's keys.
	keysMu sync.Mutex
}

var (
	_ controlapi.Backend      = (*Daemon)(nil)
	_ controlapi.KeyRotator   = (*Daemon)(nil)
	_ controlapi.SampleReader = (*Daemon)(nil)
)

// Start validates the rollouts, opens the state, re-applies each rollout's
// saved state to its proxy, then serves. It returns once everything listens.
func Start(ctx context.Context, cfg Config) (*Daemon, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := cfg.Retention.validate(); err != nil {
		return nil, &ConfigError{err}
	}
	if cfg.APIAddr == "" {
		cfg.APIAddr = DefaultAPIAddr
	}
	// Checked before anything opens: a refused start changes nothing.
	apiTLSConfig, err := apiTLS(cfg.APIAddr, cfg.APITLS, cfg.Insecure)
	if err != nil {
		cfg.Inherit.close()
		return nil, &ConfigError{err}
	}
	clock := rollout.ClockOrSystem(cfg.Clock)
	cfg.Logger, cfg.Clock = log, clock
	rollouts, raws, files, err := parseSources(cfg.Sources)
	if err != nil {
		cfg.Inherit.close()
		return nil, &ConfigError{err}
	}
	frontends, err := groupFrontends(rollouts, files)
	if err == nil {
		err = checkFlags(rollouts, files, cfg.OFREPAddr)
	}
	if err != nil {
		cfg.Inherit.close()
		return nil, &ConfigError{err}
	}
	db, incoming, err := openState(ctx, &cfg)
	if err != nil {
		cfg.Inherit.close()
		return nil, err
	}
	d := &Daemon{db: db, apiTLS: apiTLSConfig, rollouts: map[string]*managed{}, frontends: frontends, log: log, stateDir: cfg.StateDir, clock: clock,
		retention: cfg.Retention, read: cfg.Read, handovers: make(chan HandOver, 1)}
	if incoming != nil {
		d.stopsHeld = make(chan struct{})
	}
	if cfg.Inherit != nil {
		d.listeners.inherited = &inheritedSockets{free: cfg.Inherit.Sockets}
	}
	err = d.start(ctx, cfg, rollouts, raws)
	cfg.Inherit.closePipes()
	d.listeners.inherited.closeUnclaimed(log)
	if err != nil {
		d.closeAll()
		if incoming != nil {
			incoming.Close()
		}
		return nil, err
	}
	if incoming != nil {
		d.confirmTakeOver(ctx, incoming)
	}
	return d, nil
}

func (d *Daemon) start(ctx context.Context, cfg Config, rollouts []*v1alpha1.Rollout, raws [][]byte) error {
	token, err := store.LoadOrCreateToken(cfg.StateDir)
	if err != nil {
		return err
	}
	keys, err := store.LoadOrCreateCookieKeys(cfg.StateDir)
	if err != nil {
		return err
	}
	d.reg = prometheus.NewRegistry()
	d.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	d.metrics = telemetry.New(d.reg)
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	d.runCtx, d.cancel = runCtx, cancel
	d.serveCtx, d.stopServing = context.WithCancel(context.WithoutCancel(ctx))
	d.env = env{db: d.db, stateDir: cfg.StateDir, clock: d.clock, log: d.log, metrics: d.metrics, cookieKeys: route.CookieKeys(keys),
		inherit: cfg.Inherit, stopsHeld: d.stopsHeld}
	for i, r := range rollouts {
		if err := d.add(ctx, r, raws[i]); err != nil {
			return err
		}
	}
	for _, f := range d.frontends {
		if err := d.startFrontend(f); err != nil {
			return err
		}
	}
	// Before the control API, whose address file says the daemon is up.
	if err := d.startOFREP(cfg.OFREPAddr); err != nil {
		return err
	}
	if err := d.startAPI(cfg, token); err != nil {
		return err
	}
	for _, name := range d.names {
		d.rollouts[name].run()
	}
	if d.retention.enabled() {
		d.wg.Go(func() { d.pruneHistory(runCtx) })
	}
	d.accepting.Add(len(d.frontends))
	for _, f := range d.frontends {
		d.serveFrontend(f, d.accepting.Done)
	}
	d.serving.Go(func() {
		ln := d.apiLn // the plain socket, which a hand-over passes on
		if d.apiTLS != nil {
			ln = tls.NewListener(ln, d.apiTLS)
		}
		if err := d.api.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			d.log.Error("control API stopped", "err", err)
		}
	})
	d.serveOFREP()
	d.serving.Go(func() { d.listenForHandOvers(d.serveCtx) })
	return nil
}

// add builds rollout r, registers its metrics and makes it one of the
// daemon's rollouts; run starts it.
func (d *Daemon) add(ctx context.Context, r *v1alpha1.Rollout, raw []byte) error {
	m, err := newManaged(ctx, d.runCtx, d.env, r, raw)
	if err != nil {
		return fmt.Errorf("rollout %s: %w", r.Name, err)
	}
	if err := m.registerMetrics(d.rolloutMetrics(r.Name)); err != nil {
		m.cancel()
		m.closeDataPlane()
		return err
	}
	m.exportMetrics()
	d.mu.Lock()
	defer d.mu.Unlock()
	d.rollouts[r.Name] = m
	d.names = append(d.names, r.Name)
	return nil
}

// rolloutMetrics registers the metrics of one rollout's proxy.
func (d *Daemon) rolloutMetrics(name string) prometheus.Registerer {
	return prometheus.WrapRegistererWith(prometheus.Labels{"rollout": name}, d.reg)
}

// startFrontend listens on f's address, in front of its rollouts' proxies.
func (d *Daemon) startFrontend(f *frontend) error {
	if err := f.start(&d.listeners, d.handlers(f), d.log); err != nil {
		return err
	}
	d.noteAddrs(f)
	return nil
}

// handlers are the current proxies of f's rollouts, in f's order.
func (d *Daemon) handlers(f *frontend) []http.Handler {
	out := make([]http.Handler, len(f.names))
	for i, name := range f.names {
		out[i] = f.handlerOf(d.rollout(name).dataPlane().proxy)
	}
	return out
}

// serveFrontend serves f once the stable versions behind it are ready
// (awaitStable), and then calls accepting; a listener stopped before
// that never served.
func (d *Daemon) serveFrontend(f *frontend, accepting func()) {
	f.serve(&d.serving, d.log)
	d.serving.Go(func() {
		stable := d.awaitStable(d.serveCtx, f)
		accepting()
		if stable {
			f.acc.run()
		}
	})
}

// startAPI listens for the control API and writes its address down.
func (d *Daemon) startAPI(cfg Config, token string) error {
	d.apiName = cfg.APIAddr
	var err error
	if d.apiLn, err = d.listeners.listen(d.apiName); err != nil {
		return fmt.Errorf("control API: %w", err)
	}
	if d.handoverLn, err = handover.Listen(cfg.StateDir, d.log); err != nil {
		return err
	}
	addr := d.apiLn.Addr().String()
	if d.apiTLS != nil {
		// The scheme tells the clients reading the file to speak TLS.
		addr = "https://" + addr
	}
	if err := writeFileAtomic(filepath.Join(cfg.StateDir, controlapi.AddressFile), []byte(addr+"\n")); err != nil {
		return err
	}
	d.api = controlapi.NewServer(d.apiLn.Addr().String(), controlapi.NewHandler(d, authenticator{admin: controlapi.SingleToken(token), db: d.db}, promhttp.HandlerFor(d.reg, promhttp.HandlerOpts{}), d.log), d.log)
	return nil
}

// startupHold bounds how long a listener waits for the stable versions
// behind it before it serves anyway (and answers 503 while they have no
// ready replica).
const startupHold = 30 * time.Second

// stablePoll is how often a held listener checks the stable versions.
const stablePoll = 20 * time.Millisecond

// awaitStable waits until the stable version of every rollout behind f
// has a ready replica, for startupHold at most. Until then f's listener is
// open but nothing accepts: clients wait in the kernel's listen backlog
// instead of getting 503s while the processes of a (re)started daemon
// pass their readiness probes. It returns false when ctx ends first. It
// polls, and holds, on the daemon's clock.
func (d *Daemon) awaitStable(ctx context.Context, f *frontend) bool {
	hold := d.clock.NewTimer(startupHold)
	defer hold.Stop()
	for !d.stableReady(f) {
		poll := d.clock.NewTimer(stablePoll)
		select {
		case <-ctx.Done():
			poll.Stop()
			return false
		case <-hold.C():
			poll.Stop()
			d.log.Warn("serving before the stable version is ready", "addr", f.addr, "waited", startupHold)
			return true
		case <-poll.C():
		}
	}
	return true
}

// stableReady reports whether the stable version of every rollout behind f
// has a ready replica.
func (d *Daemon) stableReady(f *frontend) bool {
	d.mu.RLock()
	defer d.mu.RUnlock()
	for _, name := range f.names {
		if !d.rollouts[name].dataPlane().proxy.StableReady() {
			return false
		}
	}
	return true
}

// parseSources parses and validates every file before anything starts, and
// reports all problems at once. The metric templates of the files are
// expanded into the rollouts' metrics that reference them (a template may
// be in another file than its rollout), so the rest of the daemon never
// sees a template, and a reload that changes one changes the analysis
// of the rollouts using it.
func parseSources(sources []Source) (rollouts []*v1alpha1.Rollout, raws [][]byte, files []string, err error) {
	var errs []error
	var parsed []*spec.Source
	data := map[*spec.Source][]byte{}
	for _, src := range sources {
		s, err := spec.ParseSource(src.File, src.Data)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		parsed = append(parsed, s)
		data[s] = src.Data
	}
	if es := spec.ExpandSources(parsed); len(es) > 0 {
		errs = append(errs, es)
	}
	seen := map[string]string{}
	for _, src := range parsed {
		for _, r := range src.Rollouts() {
			if prev, dup := seen[r.Name]; dup {
				errs = append(errs, fmt.Errorf("%s: rollout %q is also defined in %s", src.Name, r.Name, prev))
				continue
			}
			seen[r.Name] = src.Name
			if spec.RuntimeOf(&r.Spec) != spec.RuntimeStandalone {
				errs = append(errs, fmt.Errorf("%s: rollout %q names a targetRef: it runs in Kubernetes (kubectl apply, pipit controller), not in pipit up", src.Name, r.Name))
				continue
			}
			rollouts = append(rollouts, r)
			raws = append(raws, data[src])
			files = append(files, src.Name)
		}
	}
	if len(errs) == 0 && len(rollouts) == 0 {
		errs = append(errs, errors.New("no rollouts given"))
	}
	return rollouts, raws, files, errors.Join(errs...)
}

// APIAddr is the control API's address.
func (d *Daemon) APIAddr() string { return d.apiLn.Addr().String() }

// ProxyAddr is the address of a rollout's proxy.
func (d *Daemon) ProxyAddr(name string) (string, bool) {
	m, err := d.get(name)
	if err != nil {
		return "", false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.addr, true
}

// PreviewAddr is the address of a blue-green rollout's preview; ok is
// false for a rollout that has none.
func (d *Daemon) PreviewAddr(name string) (addr string, ok bool) {
	m, err := d.get(name)
	if err != nil {
		return "", false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.previewAddr, m.previewAddr != ""
}

// Stop shuts the proxies down gracefully, waiting at most until ctx ends,
// then the control API and the rollout loops, then the processes pipit
// runs (gracefully too, killed when ctx ends), and closes the state.
func (d *Daemon) Stop(ctx context.Context) error {
	d.reloadMu.Lock()
	defer d.reloadMu.Unlock()
	errs := []error{d.drainProxies(ctx), d.stopDeciding(ctx)}
	for _, name := range d.names {
		if p := d.rollouts[name].process; p != nil {
			errs = append(errs, p.Shutdown(ctx))
		}
	}
	d.closeDataPlanes()
	errs = append(errs, d.db.Close())
	return errors.Join(errs...)
}

// Drain finishes a daemon that handed over: its proxies stop accepting
// and finish the requests in flight, waiting at most until ctx ends. The
// sockets stay open in the daemon that took over, so no connection is
// refused.
func (d *Daemon) Drain(ctx context.Context) error {
	d.reloadMu.Lock()
	defer d.reloadMu.Unlock()
	err := d.drainProxies(ctx)
	if err != nil {
		err = fmt.Errorf("draining after the hand-over: requests still in flight were cut: %w", err)
	}
	d.closeDataPlanes()
	if d.handedTo != nil {
		// Said even when the drain ran out of time: nothing of this
		// daemon forwards any more.
		tell, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		if derr := d.handedTo.Drained(tell); derr != nil {
			d.log.Warn("telling the daemon that took over that this one drained", "err", derr)
		}
		d.handedTo.Close()
	}
	return err
}

// drainProxies stops the listeners gracefully and waits for their
// goroutines, the control API's and the hand-over listener's included.
func (d *Daemon) drainProxies(ctx context.Context) error {
	var errs []error
	for _, f := range d.frontends {
		errs = append(errs, f.stop(ctx))
	}
	d.stopServing()
	d.handoverLn.Close()
	// A hand-over has stopped the control API already.
	errs = append(errs, d.api.Shutdown(ctx), d.stopOFREP(ctx))
	d.serving.Wait()
	return errors.Join(errs...)
}

// stopDeciding stops the control API, then the rollout loops, hooks,
// health checks, notifications and pruning, and waits for them. No
// decision is taken after it returns.
func (d *Daemon) stopDeciding(ctx context.Context) error {
	err := d.api.Shutdown(ctx)
	d.cancel()
	d.wg.Wait()
	for _, name := range d.names {
		d.rollouts[name].stop()
	}
	return err
}

func (d *Daemon) closeDataPlanes() {
	for _, name := range d.names {
		d.rollouts[name].closeDataPlane()
	}
}

// closeAll releases what a failed Start opened, and stops the processes
// it started.
func (d *Daemon) closeAll() {
	if d.cancel != nil {
		d.cancel()
		d.stopServing()
	}
	if d.handoverLn != nil {
		d.handoverLn.Close()
	}
	closeListener(d.ofrepLn)
	for _, m := range d.rollouts {
		if m.process != nil {
			m.shutdownProcesses(m.process)
		}
		m.closeDataPlane()
	}
	for _, f := range d.frontends {
		if f.ln != nil {
			f.ln.Close()
		}
	}
	if d.apiLn != nil {
		d.apiLn.Close()
	}
	d.db.Close()
}

// Rollouts lists every rollout.
func (d *Daemon) Rollouts(context.Context) ([]controlapi.RolloutView, error) {
	ms := d.all()
	out := make([]controlapi.RolloutView, 0, len(ms))
	for _, m := range ms {
		out = append(out, m.view())
	}
	return out, nil
}

// all is every rollout, in the order of the files.
func (d *Daemon) all() []*managed {
	d.mu.RLock()
	defer d.mu.RUnlock()
	out := make([]*managed, len(d.names))
	for i, name := range d.names {
		out[i] = d.rollouts[name]
	}
	return out
}

// rollout is the rollout named name, which the caller knows exists.
func (d *Daemon) rollout(name string) *managed {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.rollouts[name]
}

// Rollout returns one rollout.
func (d *Daemon) Rollout(_ context.Context, name string) (controlapi.RolloutView, error) {
	m, err := d.get(name)
	if err != nil {
		return controlapi.RolloutView{}, err
	}
	return m.view(), nil
}

// Events returns a rollout's history.
func (d *Daemon) Events(ctx context.Context, name string, limit int) ([]v1alpha1.Event, error) {
	if _, err := d.get(name); err != nil {
		return nil, err
	}
	return d.db.Events(ctx, name, limit)
}

// Samples returns a rollout's analysis results from its checks made at or
// after since, of metric or of every metric when it is empty.
func (d *Daemon) Samples(ctx context.Context, name, metric string, since time.Time) ([]controlapi.Sample, error) {
	if _, err := d.get(name); err != nil {
		return nil, err
	}
	stored, err := d.db.Samples(ctx, name, metric, since)
	if err != nil {
		return nil, err
	}
	out := make([]controlapi.Sample, len(stored))
	for i, smp := range stored {
		out[i] = controlapi.Sample{At: smp.At, MetricResult: smp.MetricResult}
	}
	return out, nil
}

// submitTimeout bounds the wait for the engine to act on a command. The
// command is durable once queued: past this wait it still takes effect.
const submitTimeout = 10 * time.Second

// Submit queues a command durably, wakes the rollout and waits until the
// engine applied or refused it.
func (d *Daemon) Submit(ctx context.Context, name string, cmd rollout.Command) (controlapi.RolloutView, error) {
	m, err := d.get(name)
	if err != nil {
		return controlapi.RolloutView{}, err
	}
	if err := engine.Allowed(m.snapshot(), cmd); err != nil {
		return controlapi.RolloutView{}, &controlapi.RefusedError{Reason: err.Error()}
	}
	if cmd.Kind == rollout.CommandDeploy && cmd.Canary != nil {
		if err := spec.CheckCanary(&m.spec().Spec, *cmd.Canary); err != nil {
			return controlapi.RolloutView{}, &controlapi.RefusedError{Reason: err.Error()}
		}
	}
	done := make(chan error, 1)
	// The waiter is registered under the lock before the command can be
	// consumed, so its answer cannot be missed.
	m.mu.Lock()
	id, err := m.store.enqueue(ctx, cmd)
	if err == nil {
		m.waiters[id] = done
	}
	m.mu.Unlock()
	if err != nil {
		return controlapi.RolloutView{}, err
	}
	m.poke()
	ctx, cancel := context.WithTimeout(ctx, submitTimeout)
	defer cancel()
	select {
	case err := <-done:
		if err != nil {
			return controlapi.RolloutView{}, &controlapi.RefusedError{Reason: err.Error()}
		}
		return m.view(), nil
	case <-m.ctx.Done():
		// This daemon stopped deciding, most likely handing over to
		// another: the command is in the shared store, where the daemon
		// deciding now consumes it.
		return m.awaitConsumed(ctx, id)
	case <-ctx.Done():
		return controlapi.RolloutView{}, fmt.Errorf("command %d queued but not applied yet: %w", id, ctx.Err())
	}
}

// consumedPoll is how often a command handed to another daemon is looked
// for in the store.
const consumedPoll = 20 * time.Millisecond

// awaitConsumed waits until command id is no longer pending in the store,
// and returns the rollout as the store then has it. The daemon that
// consumed it answers nobody, so whether it applied or refused the
// command shows in the status only.
func (m *managed) awaitConsumed(ctx context.Context, id int64) (controlapi.RolloutView, error) {
	for {
		pending, err := m.store.db.PendingCommands(ctx, m.name)
		if err != nil {
			return controlapi.RolloutView{}, err
		}
		if !slices.ContainsFunc(pending, func(c store.Command) bool { return c.ID == id }) {
			rec, err := m.store.db.Rollout(ctx, m.name)
			if err != nil {
				return controlapi.RolloutView{}, err
			}
			v := m.view()
			v.Status = rec.Status
			return v, nil
		}
		select {
		case <-ctx.Done():
			return controlapi.RolloutView{}, fmt.Errorf("command %d queued but not applied yet: %w", id, ctx.Err())
		case <-time.After(consumedPoll):
		}
	}
}

// RotateCookieKeys makes a new key to sign sticky cookies with, keeping
// the current one as the previous. The keys are saved before any proxy
// gets them, so a failure changes nothing and a restart keeps the
// rotation and its time.
func (d *Daemon) RotateCookieKeys(context.Context) (controlapi.KeyRotation, error) {
	d.keysMu.Lock()
	defer d.keysMu.Unlock()
	keys, err := store.RotateCookieKeys(d.stateDir, d.clock.Now())
	if err != nil {
		return controlapi.KeyRotation{}, err
	}
	rot := controlapi.KeyRotation{RotatedAt: keys.RotatedAt, Rollouts: []controlapi.KeyGrace{}}
	// Proxies that reloads build from now on sign with the new key too.
	d.env.cookieKeys = route.CookieKeys(keys)
	for _, m := range d.all() {
		p := m.dataPlane().proxy
		if p == nil {
			continue // a flag signs no cookies
		}
		if err := p.SetCookieKeys(route.CookieKeys(keys)); err != nil {
			return controlapi.KeyRotation{}, fmt.Errorf("rollout %s: %w", m.name, err)
		}
		if ttl := p.StickyTTL(); ttl > 0 {
			rot.Rollouts = append(rot.Rollouts, controlapi.KeyGrace{Name: m.name, PreviousUntil: keys.RotatedAt.Add(ttl)})
		}
	}
	d.log.Info("sticky cookie key rotated", "rotatedAt", keys.RotatedAt)
	return rot, nil
}

func (d *Daemon) get(name string) (*managed, error) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	m, ok := d.rollouts[name]
	if !ok {
		return nil, fmt.Errorf("%w: %q", controlapi.ErrNotFound, name)
	}
	return m, nil
}

func deployCommand(v v1alpha1.VersionRef, actor string) rollout.Command {
	return rollout.Command{Kind: rollout.CommandDeploy, Canary: &v, Actor: actor}
}

// writeFileAtomic writes through a temporary file and a rename, so a reader
// never sees half a file.
func writeFileAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
