package proxy

import (
	"net/url"

	"github.com/pipit-dev/pipit/internal/proxy/health"
)

// NewHealthChecker returns a checker of p's upstreams (see package
// health), paced by p's clock unless cfg gives one; Run starts it. It
// follows the upstreams as SetEndpoints replaces them.
func NewHealthChecker(p *Proxy, cfg health.Config) (*health.Checker, error) {
	if cfg.Clock == nil {
		cfg.Clock = p.clock
	}
	return health.NewChecker(healthTarget{p}, cfg)
}

// healthTarget is a Proxy as its health checker sees it.
type healthTarget struct{ p *Proxy }

// Upstream implements health.Target: the version in role and the base
// URLs of its replicas, the machines probed.
func (t healthTarget) Upstream(role string) (version string, machines []*url.URL, ok bool) {
	b := t.p.table.Load().backend(role)
	if b == nil {
		return "", nil, false
	}
	for _, ep := range b.up.replicas.Endpoints() {
		machines = append(machines, ep.URL())
	}
	return b.up.Version, machines, true
}

// SetOutOfRotation implements health.Target. It holds the proxy's lock,
// as SetEndpoints does, so a group swapped in meanwhile cannot miss it.
func (t healthTarget) SetOutOfRotation(role, version string, out []string) {
	t.p.mu.Lock()
	defer t.p.mu.Unlock()
	if b := t.p.table.Load().backend(role); b != nil && b.up.Version == version {
		b.up.replicas.SetOutOfRotation(out)
	}
}

// AttachPassive implements health.Target.
func (t healthTarget) AttachPassive(s *health.Passive) bool {
	return t.p.passive.CompareAndSwap(nil, s)
}

// DetachPassive implements health.Target.
func (t healthTarget) DetachPassive(s *health.Passive) { t.p.passive.CompareAndSwap(s, nil) }
