package proxy

import (
	"context"
	"fmt"

	"github.com/pipit-dev/pipit/internal/traffic"
)

// ejection is the canary's ejection by passive outlier detection
// (Config.OutlierFailures).
type ejection struct {
	version string // the canary version ejected
	reason  string // how many failures in a row, and the last one
}

// Ejected reports the ejection in force: the canary version ejected and
// why. ok is false when the canary serves, or was shut off by
// SetCanaryAllowed rather than ejected.
func (p *Proxy) Ejected() (version, reason string, ok bool) {
	t := p.table.Load()
	last := p.ejection.Load()
	if last == nil || t.canary == nil || !t.CanaryClosed() || t.canary.up.Version != last.version {
		return "", "", false
	}
	return last.version, last.reason, true
}

// detectOutlier counts the canary's failures in a row, 5xx answers and
// transport errors alike, and ejects it when they reach the threshold
// (health.Outliers). Stable is never ejected: there is nowhere else to
// send its traffic.
func (p *Proxy) detectOutlier(b *backend, class traffic.Class, reason string) {
	if b.role != RoleCanary {
		return
	}
	n, outlier := p.outliers.Observe(&b.failuresInARow, class == traffic.ClassError || class == traffic.Class5xx)
	if !outlier {
		return
	}
	if reason == "" {
		reason = "answered " + class.String()
	}
	p.eject(b, fmt.Sprintf("%d failures in a row (5xx answers or transport errors), the last: %s", n, reason))
}

// eject shuts the canary b off at once, as SetCanaryAllowed(false) does,
// and reports it to Config.OnEject. It does nothing when b is no longer
// the canary or the canary is already shut off.
func (p *Proxy) eject(b *backend, reason string) {
	p.mu.Lock()
	t := p.table.Load()
	if t.canary != b || t.CanaryClosed() {
		p.mu.Unlock()
		return
	}
	nt := *t
	nt.Table = nt.WithCanaryAllowed(false)
	p.table.Store(&nt)
	p.ejection.Store(&ejection{version: b.up.Version, reason: reason})
	p.mu.Unlock()
	p.log.Warn("canary ejected: its traffic goes to stable", "version", b.up.Version, "reason", reason)
	if p.onEject != nil {
		p.tasks.Go(func(context.Context) { p.onEject(RoleCanary, reason) })
	}
}
