package standalone

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"sync"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/controlapi"
	"github.com/pipit-dev/pipit/internal/engine"
	"github.com/pipit-dev/pipit/internal/metric"
	"github.com/pipit-dev/pipit/internal/notify"
	"github.com/pipit-dev/pipit/internal/proxy"
	"github.com/pipit-dev/pipit/internal/runtime"
	"github.com/pipit-dev/pipit/internal/spec"
)

// reloadActor is the actor of the events a reload records.
const reloadActor = "reload"

// drainWait bounds how long a reload waits for the requests in flight
// through a listener it closes, and for the processes of a rollout it
// removes to stop gracefully.
const drainWait = processShutdownWait

// reloadPlan is what a reload will do, worked out and checked before
// anything changes.
type reloadPlan struct {
	names     []string // every rollout, in the files' order
	added     []addedRollout
	removed   []*managed
	changed   []*rolloutChange
	frontends []*frontend // the listeners as the files group them
	// opened are the frontends whose listener the reload opened.
	opened []*frontend
	// routing is the handler of each frontend of the new layout, and
	// servers the new server of each whose settings changed.
	routing map[*frontend]http.Handler
	servers map[*frontend]*proxy.Server
}

// addedRollout is a rollout new to the files; m is nil until it is built.
type addedRollout struct {
	r    *v1alpha1.Rollout
	raw  []byte
	file string
	m    *managed
}

// rolloutChange is what a reload changes in one running rollout.
type rolloutChange struct {
	m      *managed
	next   *v1alpha1.Rollout
	raw    []byte
	file   string
	plan   spec.Plan
	fields []string // what changed, as the spec names it
	// install is set when the file's stable changed while no canary is in
	// flight: it is installed as the new stable version.
	install bool
	// Parts built before anything is applied; nil when kept.
	plane    *dataPlane
	oldPlane *dataPlane // the plane plane replaced, closed once no listener routes to it
	meter    *metric.Set
	hooks    *runtime.Hooks
	notifier *notify.Dispatcher
}

// Reload reads the rollout files again and applies what changed in them:
// rollouts added are started, rollouts removed are stopped (their state
// stays in the database), changed rollouts take their new spec as
// docs/operations.md ("Reloading the configuration") describes, and
// listeners are opened, re-routed or closed. Every file is parsed and
// checked first: a refusal is a *ConfigError and changes nothing. Requests
// in flight are never failed, and listeners that stay are never closed.
func (d *Daemon) Reload(ctx context.Context) (controlapi.ReloadResult, error) {
	if d.read == nil {
		return controlapi.ReloadResult{}, errors.New("this daemon cannot read its rollout files again")
	}
	d.reloadMu.Lock()
	defer d.reloadMu.Unlock()
	if d.handingOver {
		return controlapi.ReloadResult{}, errors.New("this daemon is handing over to another one: reload that one")
	}
	d.keysMu.Lock()
	defer d.keysMu.Unlock()
	sources, err := d.read()
	if err != nil {
		return controlapi.ReloadResult{}, &ConfigError{err}
	}
	p, err := d.planReload(sources)
	if err != nil {
		return controlapi.ReloadResult{}, &ConfigError{err}
	}
	if err := d.prepare(ctx, p); err != nil {
		p.undo(ctx)
		return controlapi.ReloadResult{}, err
	}
	d.commit(ctx, p)
	res := p.result()
	d.log.Info("configuration reloaded", "added", res.Added, "removed", res.Removed, "changed", len(res.Changed))
	return res, nil
}

// planReload parses and checks the files, and compares them with what
// runs.
func (d *Daemon) planReload(sources []Source) (*reloadPlan, error) {
	rollouts, raws, files, err := parseSources(sources)
	if err != nil {
		return nil, err
	}
	frontends, err := groupFrontends(rollouts, files)
	if err != nil {
		return nil, err
	}
	p := &reloadPlan{frontends: frontends}
	var errs []error
	for i, r := range rollouts {
		p.names = append(p.names, r.Name)
		m := d.rollout(r.Name)
		if m == nil {
			p.added = append(p.added, addedRollout{r: r, raw: raws[i], file: files[i]})
			continue
		}
		c, err := m.changeTo(r, raws[i], files[i])
		if err != nil {
			errs = append(errs, err)
		} else if c != nil {
			p.changed = append(p.changed, c)
		}
	}
	for _, m := range d.all() {
		if !slices.Contains(p.names, m.name) {
			p.removed = append(p.removed, m)
		}
	}
	// A reload cannot open the OFREP listener: a daemon started without
	// one refuses flag rollouts as at start.
	return p, errors.Join(append(errs, checkFlags(rollouts, files, d.ofrepName))...)
}

// changeTo works out what changes when m takes next, or nil when nothing
// does, and refuses what cannot change now.
func (m *managed) changeTo(next *v1alpha1.Rollout, raw []byte, file string) (*rolloutChange, error) {
	cur := m.spec()
	if (cur.Spec.Flag == nil) != (next.Spec.Flag == nil) {
		return nil, fmt.Errorf("%s: rollout %q: spec.flag: a reload cannot switch a rollout between spec.flag and spec.service; give the rollout a new name instead",
			file, next.Name)
	}
	fields := changedFields(cur, next)
	if len(fields) == 0 {
		return nil, nil
	}
	plan, err := spec.Resolve(&next.Spec)
	if err != nil {
		return nil, fmt.Errorf("%s: rollout %q: %w", file, next.Name, err)
	}
	c := &rolloutChange{m: m, next: next, raw: raw, file: file, plan: plan, fields: fields}
	if next.Spec.Flag != nil {
		return c, m.checkFlagChange(c)
	}
	if !slices.Contains(fields, "spec.service.stable") {
		return c, nil
	}
	was, now := cur.Spec.Service.Stable, next.Spec.Service.Stable
	if (was.Process == nil) != (now.Process == nil) {
		return nil, fmt.Errorf("%s: rollout %q: spec.service.stable: a reload cannot switch a rollout between processes and URLs; give the rollout a new name instead",
			file, next.Name)
	}
	st := m.snapshot()
	if inFlight(st.Phase) {
		return nil, fmt.Errorf("%s: rollout %q: spec.service.stable: changed from %s to %s while canary %s is in flight (%s); leave the stable as it was until the rollout has finished, or abort it first",
			file, next.Name, reachedAt(was), reachedAt(now), st.Canary.Version, st.Phase)
	}
	c.install = st.Stable == nil || !reflect.DeepEqual(*st.Stable, *versionOf(now))
	return c, nil
}

// checkFlagChange refuses a change of spec.flag while a variant is being
// rolled out, whose users would change variant under it, and one that
// drops the variant every user has now. The flag is rebuilt (build) with
// the new spec.flag; any other change keeps it, and with it what each
// user was served.
func (m *managed) checkFlagChange(c *rolloutChange) error {
	changed := slices.DeleteFunc(slices.Clone(c.fields), func(f string) bool { return !slices.Contains(flagFields, f) })
	if len(changed) == 0 {
		return nil
	}
	st := m.snapshot()
	if inFlight(st.Phase) {
		return fmt.Errorf("%s: rollout %q: %s: changed while variant %s is being rolled out (%s); leave spec.flag as it was until the rollout has ended, or abort it first",
			c.file, c.next.Name, strings.Join(changed, ", "), st.Canary.Version, st.Phase)
	}
	if _, ok := c.next.Spec.Flag.Variants[st.Stable.Version]; !ok {
		return fmt.Errorf("%s: rollout %q: spec.flag.variants: the variant every user has now, %q, is not one of them; keep it until another variant has been promoted",
			c.file, c.next.Name, st.Stable.Version)
	}
	return nil
}

// inFlight reports whether a canary is being rolled out in phase p, to
// the end of its promotion or rollback.
func inFlight(p v1alpha1.Phase) bool {
	return p != "" && p != v1alpha1.PhaseIdle && !p.Terminal()
}

// changedFields names the fields of the spec on which a and b differ,
// for a service and for a flag alike: the fields of the kind a rollout is
// not are zero on both sides.
func changedFields(a, b *v1alpha1.Rollout) []string {
	as, bs := a.Spec, b.Spec
	fields := []specField{{"metadata.namespace", a.Namespace, b.Namespace}}
	fields = append(fields, serviceFields(valueOf(as.Service), valueOf(bs.Service))...)
	fields = append(fields, flagSpecFields(valueOf(as.Flag), valueOf(bs.Flag))...)
	fields = append(fields, []specField{
		{"spec.strategy", as.Strategy, bs.Strategy}, {"spec.analysis", as.Analysis, bs.Analysis},
		{"spec.analysis.goals", goalsOf(a), goalsOf(b)},
		{"spec.decision", as.Decision, bs.Decision}, {"spec.progressDeadline", as.ProgressDeadline, bs.ProgressDeadline},
		{"spec.undoWindow", as.UndoWindow, bs.UndoWindow}, {"spec.webhooks", as.Webhooks, bs.Webhooks},
		{"spec.notifications", as.Notifications, bs.Notifications}, {"spec.postPromotion", as.PostPromotion, bs.PostPromotion},
	}...)
	var out []string
	for _, f := range fields {
		if !reflect.DeepEqual(f.x, f.y) {
			out = append(out, f.name)
		}
	}
	if len(out) == 0 && !reflect.DeepEqual(as, bs) {
		out = append(out, "spec")
	}
	return out
}

// specField is one field of two specs compared, as the spec names it.
type specField struct {
	name string
	x, y any
}

// valueOf is *p, or the zero value when p is nil.
func valueOf[T any](p *T) T {
	var v T
	if p != nil {
		v = *p
	}
	return v
}

// serviceFields are the fields of spec.service of two rollouts.
func serviceFields(av, bv v1alpha1.ServiceSpec) []specField {
	return []specField{
		{"spec.service.listen", av.Listen, bv.Listen}, {"spec.service.host", av.Host, bv.Host},
		{"spec.service.pathPrefix", av.PathPrefix, bv.PathPrefix}, {"spec.service.stable", av.Stable, bv.Stable},
		{"spec.service.canary", av.Canary, bv.Canary}, {"spec.service.healthCheck", av.HealthCheck, bv.HealthCheck},
		{"spec.service.traffic", av.Traffic, bv.Traffic}, {"spec.service.tls", av.TLS, bv.TLS},
		{"spec.service.versionHeader", av.VersionHeader, bv.VersionHeader},
		{"spec.service.trustedProxies", av.TrustedProxies, bv.TrustedProxies}, {"spec.service.limits", av.Limits, bv.Limits},
	}
}

// flagFields name the fields of spec.flag: changing one rebuilds the
// flag.
var flagFields = []string{"spec.flag.key", "spec.flag.variants", "spec.flag.defaultVariant", "spec.flag.rolloutVariant",
	"spec.flag.salt", "spec.flag.rules"}

// flagSpecFields are the fields of spec.flag of two rollouts, named as
// flagFields.
func flagSpecFields(af, bf v1alpha1.FlagSpec) []specField {
	values := [][2]any{{af.Key, bf.Key}, {af.Variants, bf.Variants}, {af.DefaultVariant, bf.DefaultVariant},
		{af.RolloutVariant, bf.RolloutVariant}, {af.Salt, bf.Salt}, {af.Rules, bf.Rules}}
	out := make([]specField, len(values))
	for i, v := range values {
		out[i] = specField{flagFields[i], v[0], v[1]}
	}
	return out
}

// planeFields are the fields a rollout's proxy, or its flag, is built
// with: changing one rebuilds it.
var planeFields = append([]string{"spec.service.traffic", "spec.service.healthCheck", "spec.service.versionHeader", "spec.analysis.goals"},
	flagFields...)

// canaryFields name the canary a rollout file names: a change queues a
// deploy of it (deployFromFile).
var canaryFields = []string{"spec.service.canary", "spec.flag.rolloutVariant"}

// prepare opens the new listeners and builds what the reload adds or
// replaces, starting the processes of added rollouts; it changes nothing
// that runs. undo releases what it built.
func (d *Daemon) prepare(ctx context.Context, p *reloadPlan) error {
	running := d.frontendsByKey()
	for _, f := range p.frontends {
		if running[f.key()] != nil {
			continue
		}
		var err error
		if f.ln, err = d.listeners.listen(f.addr); err != nil {
			return fmt.Errorf("listener %s: %w", f.addr, err)
		}
		p.opened = append(p.opened, f)
	}
	for i := range p.added {
		a := &p.added[i]
		m, err := newManaged(ctx, d.runCtx, d.env, a.r, a.raw)
		if err != nil {
			return fmt.Errorf("%s: rollout %s: %w", a.file, a.r.Name, err)
		}
		a.m = m
	}
	for _, c := range p.changed {
		if err := c.build(d.env); err != nil {
			return fmt.Errorf("%s: rollout %s: %w", c.file, c.next.Name, err)
		}
	}
	return d.prepareServers(p, running)
}

// prepareServers builds the handler of every listener of the new layout,
// and a server for each new listener and each whose settings changed.
func (d *Daemon) prepareServers(p *reloadPlan, running map[string]*frontend) error {
	p.routing, p.servers = map[*frontend]http.Handler{}, map[*frontend]*proxy.Server{}
	for _, f := range p.frontends {
		handlers := make([]http.Handler, len(f.names))
		for i, name := range f.names {
			handlers[i] = f.handlerOf(p.proxyOf(d, name))
		}
		h, err := f.handler(handlers)
		if err != nil {
			return err
		}
		p.routing[f] = h
		var sw *proxy.Switch
		switch old := running[f.key()]; {
		case old == nil:
			if f.sw, err = proxy.NewSwitch(h); err != nil {
				return err
			}
			sw = f.sw
		case len(old.settings.differences(f.settings)) == 0:
			continue
		default:
			sw = old.sw
		}
		server, err := proxy.NewServer(sw, f.settings.serverConfig(d.log))
		if err != nil {
			return fmt.Errorf("listener %s: %w", f.addr, err)
		}
		p.servers[f] = server
	}
	return nil
}

// proxyOf is the proxy rollout name will have once p is applied.
func (p *reloadPlan) proxyOf(d *Daemon, name string) *proxy.Proxy {
	for _, a := range p.added {
		if a.r.Name == name {
			return a.m.dataPlane().proxy
		}
	}
	for _, c := range p.changed {
		if c.next.Name == name && c.plane != nil {
			return c.plane.proxy
		}
	}
	return d.rollout(name).dataPlane().proxy
}

// frontendsByKey are the running frontends by key.
func (d *Daemon) frontendsByKey() map[string]*frontend {
	d.mu.RLock()
	defer d.mu.RUnlock()
	out := map[string]*frontend{}
	for _, f := range d.frontends {
		out[f.key()] = f
	}
	return out
}

// build makes the parts of c.m that its change replaces: the proxy (and
// with it the analysis) when its settings changed, the analysis, hooks
// and notifications when theirs did.
func (c *rolloutChange) build(e env) error {
	m, old := c.m, c.m.spec()
	changed := func(names ...string) bool {
		return slices.ContainsFunc(c.fields, func(f string) bool { return slices.Contains(names, f) })
	}
	var err error
	if changed(planeFields...) {
		if c.plane, err = m.newPlane(c.next, *m.snapshot().Stable, e.cookieKeys); err != nil {
			return err
		}
	}
	if c.plane != nil || changed("spec.analysis", "spec.postPromotion", "metadata.namespace") {
		pl := c.plane
		if pl == nil {
			pl = m.dataPlane()
		}
		if c.meter, err = m.newMeter(c.next, c.plan, pl); err != nil {
			return err
		}
	}
	// Hooks poll rollback hooks once an analysis interval.
	if cur := m.planNow(); !reflect.DeepEqual(c.plan.Hooks, cur.Hooks) || c.plan.Analysis.Interval != cur.Analysis.Interval ||
		old.Namespace != c.next.Namespace {
		c.hooks = runtime.NewHooks(m.ctx, c.next.Name, c.next.Namespace, c.plan, e.clock, e.log)
	}
	if changed("spec.notifications") {
		if c.notifier, err = m.newNotifier(c.next); err != nil {
			return err
		}
	}
	return nil
}

// planNow is the plan the rollout runs now.
func (m *managed) planNow() spec.Plan {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.plan
}

// undo releases what a failed prepare built: the listeners it opened and
// the rollouts it added, whose processes it stops.
func (p *reloadPlan) undo(ctx context.Context) {
	for _, f := range p.opened {
		f.ln.Close()
	}
	for _, a := range p.added {
		if a.m == nil {
			continue
		}
		a.m.cancel()
		if a.m.process != nil {
			a.m.shutdownProcesses(a.m.process)
		}
		a.m.closeDataPlane()
	}
	for _, c := range p.changed {
		if c.plane != nil {
			c.plane.close()
		}
	}
	for _, s := range p.servers {
		s.Close()
	}
}

// result sums the reload up for the caller.
func (p *reloadPlan) result() controlapi.ReloadResult {
	res := controlapi.ReloadResult{Added: []string{}, Removed: []string{}, Changed: []controlapi.RolloutChange{}}
	for _, a := range p.added {
		res.Added = append(res.Added, a.r.Name)
	}
	for _, m := range p.removed {
		res.Removed = append(res.Removed, m.name)
	}
	for _, c := range p.changed {
		res.Changed = append(res.Changed, controlapi.RolloutChange{Name: c.next.Name, Fields: c.fields})
	}
	return res
}

// reloadedEvent records in a rollout's history what a reload did to it.
func reloadedEvent(st v1alpha1.RolloutStatus, now metav1.MicroTime, format string, args ...any) v1alpha1.Event {
	return v1alpha1.Event{Time: now, Type: v1alpha1.EventNormal, Reason: "Reloaded", Message: fmt.Sprintf(format, args...),
		Phase: st.Phase, Step: st.CurrentStep, Weight: st.CanaryWeight, Actor: reloadActor}
}

// applyChange makes m run c, on m's loop goroutine between two ticks.
// The plan applies from the next tick, at the step the rollout is on.
func (m *managed) applyChange(ctx context.Context, c *rolloutChange) {
	r := m.runner
	m.mu.Lock()
	m.rollout, m.plan = c.next, c.plan
	m.mu.Unlock()
	m.store.spec = c.raw
	r.Store, r.Plan = m.store, c.plan
	if c.meter != nil {
		r.Meter, m.meter = c.meter, c.meter
	}
	if c.hooks != nil {
		old := m.hooks
		r.Hooks, m.hooks = c.hooks, c.hooks
		m.wg.Go(old.Wait)
	}
	if c.notifier != nil {
		old := m.notifier
		m.notifier = c.notifier
		m.env.metrics.Notifiers(metricsNamespace, m.name, c.notifier.Stats)
		m.wg.Go(old.Close)
		m.wg.Go(func() { c.notifier.Run(m.ctx) })
	}
	if c.plane != nil {
		// Steered before it is swapped in: OFREP serves a flag from the
		// current plane at once, and its users keep their variants only
		// if it has the old one's weight already.
		m.switchPlane(ctx, c.plane)
		m.mu.Lock()
		c.oldPlane, m.plane = m.plane, c.plane
		m.mu.Unlock()
	}
	m.recordChange(ctx, c)
	m.publish() // readers see the change once Reload returns
}

// switchPlane steers the new proxy pl: it gets the endpoints and the
// weight of the old one before a listener routes to it.
func (m *managed) switchPlane(ctx context.Context, pl *dataPlane) {
	r := m.runner
	r.Target, r.Router = m.targetOn(pl), m.routerOn(pl)
	m.runChecker(pl)
	if m.relay == nil {
		// The static target only points the proxy at URLs: applying
		// the saved state again is all the new proxy needs.
		if err := r.Converge(ctx); err != nil {
			m.log.Warn("re-applying the state to the new proxy; retrying on the next tick", "err", err)
		}
		return
	}
	// The process target's versions run on: the proxy gets their ready
	// replicas and the weight, and no process is started or stopped.
	if err := m.relay.switchTo(pl.proxy); err != nil {
		m.log.Warn("routing the new proxy to the processes", "err", err)
	}
	st := r.Status
	if err := r.Router.SetWeight(ctx, st.CanaryWeight, engine.CanaryLive(st.Phase)); err != nil {
		m.log.Warn("setting the weight of the new proxy", "err", err)
	}
}

// recordChange saves the Reloaded event, installs the file's new stable
// when c says so, and queues a deploy of a new canary from the file.
func (m *managed) recordChange(ctx context.Context, c *rolloutChange) {
	r := m.runner
	st := r.Status
	now := metav1.NewMicroTime(m.clock.Now())
	var events []v1alpha1.Event
	install := c.install && !inFlight(st.Phase)
	if install {
		stable, _ := fileVersions(c.next)
		res, err := installFromFile(c.plan, stable, "rollout file", now.Time)
		if err != nil {
			m.log.Warn("installing the new stable version", "err", err)
			install = false
		} else {
			st, events = res.Status, res.Events
		}
	}
	events = append(events, reloadedEvent(st, now, "Reloaded from %s: %s changed", c.file, strings.Join(c.fields, ", ")))
	if err := m.store.Save(ctx, st, events, nil); err != nil {
		m.log.Warn("saving the reload in the history", "err", err)
		return
	}
	r.Status = st
	if install {
		if err := r.Converge(ctx); err != nil {
			m.log.Warn("installing the new stable version; retrying on the next tick", "err", err)
		}
	}
	if slices.ContainsFunc(c.fields, func(f string) bool { return slices.Contains(canaryFields, f) }) {
		if err := m.deployFromFile(ctx, st); err != nil {
			m.log.Warn("queueing the deploy of the file's canary", "err", err)
		}
	}
}

// commit applies a prepared reload. Nothing in it fails the reload: what
// goes wrong is logged, and the loop retries it as it retries any action.
func (d *Daemon) commit(ctx context.Context, p *reloadPlan) {
	for _, c := range p.changed {
		if err := c.m.onLoop(func(ctx context.Context) { c.m.applyChange(ctx, c) }); err != nil {
			d.log.Warn("reloading a rollout", "rollout", c.m.name, "err", err)
		}
	}
	for _, a := range p.added {
		d.startAdded(ctx, a)
	}
	d.mu.Lock()
	for _, m := range p.removed {
		delete(d.rollouts, m.name)
	}
	d.names = p.names
	d.mu.Unlock()
	closing := d.switchFrontends(p)
	for _, c := range p.changed {
		if c.oldPlane != nil {
			c.oldPlane.close()
		}
	}
	drain, cancel := context.WithTimeout(context.WithoutCancel(ctx), drainWait)
	defer cancel()
	var wg sync.WaitGroup
	for _, f := range closing {
		wg.Go(func() {
			if err := f.stop(drain); err != nil {
				d.log.Warn("draining a listener no rollout uses any more", "addr", f.addr, "err", err)
			}
		})
	}
	wg.Wait()
	for _, m := range p.removed {
		d.remove(ctx, m)
	}
}

// startAdded makes an added rollout one of the daemon's and runs it.
func (d *Daemon) startAdded(ctx context.Context, a addedRollout) {
	m := a.m
	if err := m.registerMetrics(d.rolloutMetrics(m.name)); err != nil {
		d.log.Warn("exposing the metrics of an added rollout", "rollout", m.name, "err", err)
	}
	m.exportMetrics()
	d.noteOFREPAddr(m)
	st := m.runner.Status
	ev := reloadedEvent(st, metav1.NewMicroTime(m.clock.Now()), "Added from %s by a reload", a.file)
	if err := m.store.Save(ctx, st, []v1alpha1.Event{ev}, nil); err != nil {
		m.log.Warn("saving the reload in the history", "err", err)
	}
	d.mu.Lock()
	d.rollouts[m.name] = m
	d.mu.Unlock()
	m.run()
}

// remove stops a rollout gone from the files: its loop, hooks,
// notifications and health checks, then its processes, gracefully. Its
// state stays in the database.
func (d *Daemon) remove(ctx context.Context, m *managed) {
	m.stop()
	d.rolloutMetrics(m.name).Unregister(planeCollector{m})
	d.metrics.Forget(metricsNamespace, m.name)
	st := m.runner.Status
	ev := reloadedEvent(st, metav1.NewMicroTime(m.clock.Now()),
		"Removed from the rollout files by a reload; its state is kept, and adding it back resumes it")
	if err := m.store.Save(ctx, st, []v1alpha1.Event{ev}, nil); err != nil {
		m.log.Warn("saving the reload in the history", "err", err)
	}
	if m.process != nil {
		m.shutdownProcesses(m.process)
	}
	m.closeDataPlane()
}

// switchFrontends serves the new layout: new listeners first, so that a
// rollout that moves is served on its new address before its old route
// goes, then the listeners that stay, re-routed (and given a new server
// when their settings changed). It returns the listeners no rollout uses
// any more, still open.
func (d *Daemon) switchFrontends(p *reloadPlan) []*frontend {
	running := d.frontendsByKey()
	var next, kept []*frontend
	for _, f := range p.frontends {
		if running[f.key()] != nil {
			kept = append(kept, f)
			continue
		}
		f.server, f.acc = p.servers[f], newAcceptor(f.ln, d.log)
		d.noteAddrs(f)
		d.serveFrontend(f, func() {})
		next = append(next, f)
	}
	for _, f := range kept {
		old := running[f.key()]
		delete(running, f.key())
		d.reroute(old, f, p)
		next = append(next, old)
	}
	d.mu.Lock()
	var closing []*frontend
	for _, f := range d.frontends {
		if running[f.key()] != nil {
			closing = append(closing, f)
		}
	}
	d.frontends = next
	d.mu.Unlock()
	return closing
}

// reroute gives the running frontend old the routes of f, its place in
// the new layout: the new handler for the next requests, and a new server
// for the next connections when its settings changed, while the previous
// server serves on the connections it has.
func (d *Daemon) reroute(old, f *frontend, p *reloadPlan) {
	d.mu.Lock()
	old.routes, old.names, old.files, old.single = f.routes, f.names, f.files, f.single
	d.mu.Unlock()
	if err := old.sw.Set(p.routing[f]); err != nil { // a Proxy or a Mux, always
		d.log.Error("re-routing a listener", "addr", old.addr, "err", err)
	}
	d.noteAddrs(old)
	server := p.servers[f]
	if server == nil {
		return
	}
	// The previous server keeps the connections it has, with their
	// settings, until they end: shutting it down would close those that
	// had not sent their first request yet, failing it.
	old.retired = append(old.retired, old.server)
	old.settings, old.server = f.settings, server
	old.serve(&d.serving, d.log)
}

// noteAddrs tells f's rollouts where they listen.
func (d *Daemon) noteAddrs(f *frontend) {
	addr := f.ln.Addr().String()
	for _, name := range f.names {
		d.rollout(name).setAddr(addr, f.preview)
	}
}
