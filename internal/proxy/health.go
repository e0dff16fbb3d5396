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

// Upstream implements health.Target.
func (t healthTarget) Upstream(role string) (id health.ID, probe *url.URL, ok bool) {
	b := t.p.table.Load().backend(role)
	if b == nil {
		return health.ID{}, nil, false
	}
	return healthID(b), b.up.URL, true
}

// AttachPassive implements health.Target.
func (t healthTarget) AttachPassive(s *health.Passive) bool {
	return t.p.passive.CompareAndSwap(nil, s)
}

// DetachPassive implements health.Target.
func (t healthTarget) DetachPassive(s *health.Passive) { t.p.passive.CompareAndSwap(s, nil) }

// healthID identifies b's upstream for health: its version and first URL.
func healthID(b *backend) health.ID {
	if b.up.URL == nil { // a version with no ready replica (SetEndpoints)
		return health.ID{Version: b.up.Version}
	}
	return health.ID{Version: b.up.Version, URL: b.up.URL.String()}
}
