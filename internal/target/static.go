// Package target holds the ways pipit runs the versions of a service, one
// file each, behind rollout.Target.
package target

import (
	"context"
	"fmt"
	"net/url"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/rollout"
)

// Upstreams is the part of the built-in proxy a static target steers.
// *proxy.Proxy implements it. Each SetEndpoints swaps one role at once,
// and no request in flight is dropped by a swap.
type Upstreams interface {
	Endpoints
	// RoutedVersions are the versions routed in each role now, read at
	// one instant; canary is empty when there is none.
	RoutedVersions() (stable, canary string)
	// Ejected reports a canary the proxy took out of rotation itself
	// (passive outlier detection): its version and why; ok is false when
	// none is.
	Ejected() (version, reason string, ok bool)
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

// DeployCanary points the proxy's canary role at v, at each of its
// machines when it has several. Pointing it at the version and URLs it
// has already is no change at all.
func (s *Static) DeployCanary(_ context.Context, v v1alpha1.VersionRef) error {
	urls, err := URLsOf(v)
	if err != nil {
		return err
	}
	return s.Proxy.SetEndpoints(RoleCanary, v.Version, urls)
}

// Install points the proxy's stable role at v, as Promote does: the first
// stable is reached by URL like any other.
func (s *Static) Install(ctx context.Context, v v1alpha1.VersionRef) error { return s.Promote(ctx, v) }

// Promote points the proxy's stable role at v, keeping the canary role as
// it is until the canary is retired, so no request is dropped in between.
func (s *Static) Promote(_ context.Context, v v1alpha1.VersionRef) error {
	urls, err := URLsOf(v)
	if err != nil {
		return err
	}
	return s.Proxy.SetEndpoints(RoleStable, v.Version, urls)
}

// RetireCanary takes the canary role off the proxy if it still points at v.
// The check and the change are two steps, but only the engine, one call at
// a time, changes the canary role of a static target.
func (s *Static) RetireCanary(_ context.Context, v v1alpha1.VersionRef) error {
	if _, canary := s.Proxy.RoutedVersions(); canary != v.Version {
		return nil
	}
	return s.Proxy.SetEndpoints(RoleCanary, "", nil)
}

// Observe reports the proxy's versions and the canary's health.
func (s *Static) Observe(context.Context) rollout.Observed {
	stable, canary := s.Proxy.RoutedVersions()
	o := rollout.Observed{StableVersion: stable}
	if canary == "" {
		return o
	}
	o.CanaryVersion = canary
	if version, reason, ok := s.Proxy.Ejected(); ok && version == canary {
		o.CanaryHealth, o.CanaryReason = rollout.HealthDown, "ejected by the proxy: "+reason
		return o
	}
	healthy, reason, known := s.Health.Health(RoleCanary)
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

// URLsOf are the base URLs of a version reached by URL: its machines'
// (URLs) when it lists them, else its one URL; each http or https, with a
// host.
func URLsOf(v v1alpha1.VersionRef) ([]*url.URL, error) {
	raw := v.URLs
	if raw == nil {
		raw = []string{v.URL}
	}
	urls := make([]*url.URL, len(raw))
	for i, s := range raw {
		u, err := url.Parse(s)
		if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
			return nil, fmt.Errorf("version %s: %q is not an http(s) URL", v.Version, s)
		}
		urls[i] = u
	}
	return urls, nil
}
