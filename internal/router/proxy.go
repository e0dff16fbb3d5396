// Package router holds the ways pipit splits traffic between versions, one
// file each, behind rollout.Router.
package router

import (
	"context"

	"github.com/pipit-dev/pipit/api/v1alpha1"
)

// WeightSetter is the part of the built-in proxy the router steers.
type WeightSetter interface {
	SetWeight(w v1alpha1.Percent) error
	Weight() v1alpha1.Percent
	// SetCanaryAllowed opens or closes the canary to every request,
	// matched and sticky ones included.
	SetCanaryAllowed(allowed bool)
}

// Proxy splits traffic in pipit's own built-in proxy. A weight change is
// one atomic swap, so it cannot fail half-way nor disturb a request.
type Proxy struct{ P WeightSetter }

// SetWeight sends w of the traffic to the canary, and opens or closes the
// canary to matched and sticky requests as canaryLive says. Closing
// comes before the weight change and opening after it, so that no
// request reaches a canary on its way out.
func (r Proxy) SetWeight(_ context.Context, w v1alpha1.Percent, canaryLive bool) error {
	if !canaryLive {
		r.P.SetCanaryAllowed(false)
	}
	if err := r.P.SetWeight(w); err != nil {
		return err
	}
	if canaryLive {
		r.P.SetCanaryAllowed(true)
	}
	return nil
}

// Weight is the canary's current share.
func (r Proxy) Weight() v1alpha1.Percent { return r.P.Weight() }
