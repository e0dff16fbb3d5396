// Package router holds the ways pipit splits traffic between versions, one
// file each, behind runtime.Router.
package router

import (
	"context"

	"github.com/pipit-dev/pipit/api/v1alpha1"
)

// WeightSetter is the part of the built-in proxy the router steers.
type WeightSetter interface {
	SetWeight(w v1alpha1.Percent) error
	Weight() v1alpha1.Percent
}

// Proxy splits traffic in pipit's own built-in proxy. A weight change is
// one atomic swap, so it cannot fail half-way nor disturb a request.
type Proxy struct{ P WeightSetter }

// SetWeight sends w of the traffic to the canary.
func (r Proxy) SetWeight(_ context.Context, w v1alpha1.Percent) error { return r.P.SetWeight(w) }

// Weight is the canary's current share.
func (r Proxy) Weight() v1alpha1.Percent { return r.P.Weight() }
