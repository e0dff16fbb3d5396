// Package target holds the ways pipit runs the versions of a service, one
// file each, behind rollout.Target.
package target

import (
	"context"
	"fmt"
	"net/url"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/proxy"
	"github.com/pipit-dev/pipit/internal/rollout"
)

// Upstreams is the part of the built-in proxy a static target steers.
type Upstreams interface {
	SetUpstreams(stable proxy.Upstream, canary *proxy.Upstream) error
	Upstreams() (stable proxy.Upstream, canary *proxy.Upstream)
	// Ejected reports a canary the proxy took out of rotation itself
	// (passive outlier detection).
	Ejected() (proxy.Ejection, bool)
}

// HealthSource reports a role's health ("stable" or "canary").
type HealthSource interface {
	Health(role string) (healthy bool, reason string, known bool)
}

// Static is a target whose versions are already running somewhere and are
// reached by URL: pipit only points the proxy at them.
type Static struct {
	Proxy  Upstreams
	Health HealthSource
}

// DeployCanary points the proxy's canary role at v.
func (s *Static) DeployCanary(_ context.Context, v v1alpha1.VersionRef) error {
	up, err := UpstreamOf(v)
	if err != nil {
		return err
	}
	stable, canary := s.Proxy.Upstreams()
	if canary != nil && sameUpstream(*canary, up) {
		return nil
	}
	return s.Proxy.SetUpstreams(stable, &up)
}

// Install points the proxy's stable role at v, as Promote does: the first
// stable is reached by URL like any other.
func (s *Static) Install(ctx context.Context, v v1alpha1.VersionRef) error { return s.Promote(ctx, v) }

// Promote points the proxy's stable role at v, keeping the canary role as
// it is until the canary is retired, so no request is dropped in between.
func (s *Static) Promote(_ context.Context, v v1alpha1.VersionRef) error {
	up, err := UpstreamOf(v)
	if err != nil {
		return err
	}
	stable, canary := s.Proxy.Upstreams()
	if sameUpstream(stable, up) {
		return nil
	}
	return s.Proxy.SetUpstreams(up, canary)
}

// RetireCanary takes the canary role off the proxy if it still points at v.
func (s *Static) RetireCanary(_ context.Context, v v1alpha1.VersionRef) error {
	stable, canary := s.Proxy.Upstreams()
	if canary == nil || canary.Version != v.Version {
		return nil
	}
	return s.Proxy.SetUpstreams(stable, nil)
}

// Observe reports the proxy's versions and the canary's health.
func (s *Static) Observe(context.Context) rollout.Observed {
	stable, canary := s.Proxy.Upstreams()
	o := rollout.Observed{StableVersion: stable.Version}
	if canary == nil {
		return o
	}
	o.CanaryVersion = canary.Version
	if e, ok := s.Proxy.Ejected(); ok && e.Version == canary.Version {
		o.CanaryHealth, o.CanaryReason = rollout.HealthDown, "ejected by the proxy: "+e.Reason
		return o
	}
	healthy, reason, known := s.Health.Health("canary")
	switch {
	case !known:
		o.CanaryHealth = rollout.HealthUnknown
	case healthy:
		o.CanaryHealth = rollout.HealthUp
	default:
		o.CanaryHealth, o.CanaryReason = rollout.HealthDown, reason
	}
	return o
}

// UpstreamOf turns a version's URL into a proxy upstream.
func UpstreamOf(v v1alpha1.VersionRef) (proxy.Upstream, error) {
	u, err := url.Parse(v.URL)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return proxy.Upstream{}, fmt.Errorf("version %s: %q is not an http(s) URL", v.Version, v.URL)
	}
	return proxy.Upstream{Version: v.Version, URL: u}, nil
}

func sameUpstream(a, b proxy.Upstream) bool {
	return a.Version == b.Version && a.URL.String() == b.URL.String()
}
