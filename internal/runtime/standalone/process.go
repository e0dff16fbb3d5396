package standalone

import (
	"context"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/proxy"
	"github.com/pipit-dev/pipit/internal/rollout"
	"github.com/pipit-dev/pipit/internal/target"
)

// undoMargin keeps the previous stable's processes a little longer than
// the engine's undo window, so that an undo accepted at its last moment
// still finds them running.
const undoMargin = 2 * time.Second

// processShutdownWait bounds how long the processes of a daemon that
// failed to start get to stop gracefully.
const processShutdownWait = 15 * time.Second

// processDir is the process target's directory of a rollout: its list of
// running processes and the versions' logs.
func processDir(stateDir, rollout string) string {
	return filepath.Join(stateDir, "processes", rollout)
}

// processVersions remembers how each version runs, for the process
// target's Specs lookup. The engine hands the target whole versions (the
// status keeps their process description), and the target looks
// versions up by label.
type processVersions struct {
	mu    sync.Mutex
	specs map[string]v1alpha1.ProcessSpec
}

func newProcessVersions(refs ...*v1alpha1.VersionRef) *processVersions {
	pv := &processVersions{specs: map[string]v1alpha1.ProcessSpec{}}
	for _, r := range refs {
		pv.note(r)
	}
	return pv
}

// note records how v runs; the last description given for a label wins.
func (pv *processVersions) note(v *v1alpha1.VersionRef) {
	if v == nil || v.Process == nil {
		return
	}
	pv.mu.Lock()
	defer pv.mu.Unlock()
	pv.specs[v.Version] = *v.Process
}

func (pv *processVersions) lookup(version string) (v1alpha1.ProcessSpec, bool) {
	pv.mu.Lock()
	defer pv.mu.Unlock()
	s, ok := pv.specs[version]
	return s, ok
}

// processTarget is the process target, told how each version runs by the
// versions it is asked to run, and told of ejections by the proxy.
type processTarget struct {
	*target.Process
	versions *processVersions
	proxy    *proxy.Proxy
}

// DeployCanary records how v runs, then runs it as the canary.
func (t processTarget) DeployCanary(ctx context.Context, v v1alpha1.VersionRef) error {
	t.versions.note(&v)
	return t.Process.DeployCanary(ctx, v)
}

// Promote records how v runs, then makes it the stable version.
func (t processTarget) Promote(ctx context.Context, v v1alpha1.VersionRef) error {
	t.versions.note(&v)
	return t.Process.Promote(ctx, v)
}

// Install records how v runs, then runs it as the first stable version.
func (t processTarget) Install(ctx context.Context, v v1alpha1.VersionRef) error {
	t.versions.note(&v)
	return t.Process.Install(ctx, v)
}

// Observe is the process target's view, where a canary the proxy ejected
// (its answers failed in a row) is down.
func (t processTarget) Observe(ctx context.Context) rollout.Observed {
	o := t.Process.Observe(ctx)
	if version, reason, ok := t.proxy.Ejected(); ok && version == o.CanaryVersion && o.CanaryVersion != "" {
		o.CanaryHealth, o.CanaryReason = rollout.HealthDown, "ejected by the proxy: "+reason
	}
	return o
}

// newProcessTarget starts the process target of m, whose proxy it steers,
// and runs the saved stable version. It adopts the processes a daemon
// handed over whose output pipes are in adopt; otherwise the processes a
// previous daemon left behind are stopped first (see target.NewProcess).
func (m *managed) newProcessTarget(ctx context.Context, stateDir string, adopt map[string]*os.File) (processTarget, error) {
	spec := m.rollout.Spec.Service
	st := m.status
	m.versions = newProcessVersions(versionOf(spec.Stable), upstreamVersion(spec.Canary), st.Previous, st.Stable, st.Canary)
	m.relay = &endpointsRelay{proxy: m.plane.proxy, last: map[string]endpointSet{}}
	p, err := target.NewProcess(ctx, target.ProcessConfig{
		Dir: processDir(stateDir, m.name), Specs: m.versions.lookup, Endpoints: m.relay, OnChange: m.poke,
		UndoWindow: m.plan.UndoWindow + undoMargin, Clock: m.clock, Logger: m.log, Adopt: adopt,
		HoldStops: m.env.stopsHeld,
	})
	if err != nil {
		return processTarget{}, err
	}
	t := processTarget{Process: p, versions: m.versions, proxy: m.plane.proxy}
	if err := t.Promote(ctx, *st.Stable); err != nil {
		m.shutdownProcesses(p)
		return processTarget{}, err
	}
	return t, nil
}

// shutdownProcesses stops every process of a target that is given up on.
func (m *managed) shutdownProcesses(p *target.Process) {
	ctx, cancel := context.WithTimeout(context.Background(), processShutdownWait)
	defer cancel()
	if err := p.Shutdown(ctx); err != nil {
		m.log.Warn("stopping the processes", "err", err)
	}
}

// processHealth is a role's health as the process target sees it: the
// canary's as the engine gets it, and the stable healthy while one of its
// replicas is ready.
func processHealth(p *target.Process) func(role string) (bool, string, bool) {
	return func(role string) (bool, string, bool) {
		o := p.Observe(context.Background())
		if role == target.RoleCanary {
			switch o.CanaryHealth {
			case rollout.HealthUp:
				return true, "", true
			case rollout.HealthDown:
				return false, o.CanaryReason, true
			}
			return false, "", false
		}
		for _, r := range p.Replicas(o.StableVersion) {
			if r.Ready {
				return true, "", true
			}
		}
		return false, "no ready replica", o.StableVersion != ""
	}
}

// endpointsRelay hands the process target's endpoints to the rollout's
// current proxy. The target keeps its Endpoints for life, while a reload
// may rebuild the proxy: the relay remembers the last endpoints of each
// role, so that the new proxy starts with them.
type endpointsRelay struct {
	mu    sync.Mutex
	proxy *proxy.Proxy
	last  map[string]endpointSet
}

// endpointSet is what one SetEndpoints said of a role.
type endpointSet struct {
	version string
	urls    []*url.URL
}

// SetEndpoints implements target.Endpoints.
func (r *endpointsRelay) SetEndpoints(role, version string, urls []*url.URL) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.last[role] = endpointSet{version: version, urls: urls}
	return r.proxy.SetEndpoints(role, version, urls)
}

// switchTo gives p the endpoints set last, the stable's first (a canary
// needs a stable), then steers p from now on.
func (r *endpointsRelay) switchTo(p *proxy.Proxy) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, role := range []string{target.RoleStable, target.RoleCanary} {
		if e, ok := r.last[role]; ok {
			if err := p.SetEndpoints(role, e.version, e.urls); err != nil {
				return err
			}
		}
	}
	r.proxy = p
	return nil
}

// upstreamVersion is versionOf for an optional upstream.
func upstreamVersion(u *v1alpha1.Upstream) *v1alpha1.VersionRef {
	if u == nil {
		return nil
	}
	return versionOf(*u)
}
