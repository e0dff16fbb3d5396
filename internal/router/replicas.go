package router

import (
	"context"
	"sync/atomic"

	"github.com/pipit-dev/pipit/api/v1alpha1"
)

// Scaler sizes the canary's share of the replicas behind the apex
// Service. The Deployment target is one.
type Scaler interface {
	ScaleForWeight(ctx context.Context, w v1alpha1.Percent) error
}

// Replicas splits traffic by replica counts, for workloads no router
// reaches (workers reading a queue, Services without a mesh or gateway):
// with both versions behind one Service, the canary's share of replicas is
// roughly its share of the traffic. It has no match rules, sticky
// sessions nor mirroring.
type Replicas struct {
	Scaler Scaler
	weight atomic.Int32
}

// SetWeight scales the versions for w, or for none to the canary once the
// canary is no longer live.
func (r *Replicas) SetWeight(ctx context.Context, w v1alpha1.Percent, canaryLive bool) error {
	if err := checkWeight(w); err != nil {
		return err
	}
	if !canaryLive {
		w = 0
	}
	if err := r.Scaler.ScaleForWeight(ctx, w); err != nil {
		return err
	}
	r.weight.Store(int32(w))
	return nil
}

// Weight is the weight last applied successfully.
func (r *Replicas) Weight() v1alpha1.Percent { return v1alpha1.Percent(r.weight.Load()) }

// Remove does nothing: the replicas are the target's, which releases them.
func (r *Replicas) Remove(context.Context) error { return nil }
