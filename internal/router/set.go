package router

import (
	"context"
	"errors"
	"fmt"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/rollout"
)

// Set splits the traffic of several Deployments rolled out together
// (spec.targetRefs), each through its own router, in the spec's order.
// Each router is set even when another failed, so a rollback reaches
// every one; the call fails when any of them did, and the runner sets the
// weight again.
type Set struct {
	names   []string
	routers []rollout.RouteRemover
}

// NewSet returns the router of the routers, which route the Deployments
// named names (for errors), in that order.
func NewSet(names []string, routers []rollout.RouteRemover) *Set {
	return &Set{names: names, routers: routers}
}

// SetWeight sets w on every router.
func (s *Set) SetWeight(ctx context.Context, w v1alpha1.Percent, canaryLive bool) error {
	return s.each(func(r rollout.RouteRemover) error { return r.SetWeight(ctx, w, canaryLive) })
}

// Weight is the highest weight a router applies now: the set's canary is
// off traffic only once it is off every Deployment's.
func (s *Set) Weight() v1alpha1.Percent {
	var w v1alpha1.Percent
	for _, r := range s.routers {
		w = max(w, r.Weight())
	}
	return w
}

// Remove takes every router's changes out of the user's route objects.
func (s *Set) Remove(ctx context.Context) error {
	return s.each(func(r rollout.RouteRemover) error { return r.Remove(ctx) })
}

// each calls act with every router and joins the errors, naming the
// Deployment of each when there are several.
func (s *Set) each(act func(rollout.RouteRemover) error) error {
	if len(s.routers) == 1 {
		return act(s.routers[0])
	}
	var errs []error
	for i, r := range s.routers {
		if err := act(r); err != nil {
			errs = append(errs, fmt.Errorf("router of Deployment %s: %w", s.names[i], err))
		}
	}
	return errors.Join(errs...)
}

// EnvoyClusters are the Envoy clusters of every router that routes
// through Envoy Gateway, in the spec's order.
func (s *Set) EnvoyClusters() EnvoyClusters {
	var all EnvoyClusters
	for _, r := range s.routers {
		if g, ok := r.(*GatewayAPI); ok {
			c := g.EnvoyClusters()
			all.Stable = append(all.Stable, c.Stable...)
			all.Canary = append(all.Canary, c.Canary...)
		}
	}
	return all
}
