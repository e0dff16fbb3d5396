package proxy

import (
	"math/rand/v2"
	"net/http"
	"net/http/httputil"
	"sync/atomic"

	"github.com/pipit-dev/pipit/api/v1alpha1"
)

// table is one immutable routing state. Writers build a new one and swap
// the pointer; a request routes on the table it loaded.
type table struct {
	weight v1alpha1.Percent
	stable *backend
	canary *backend // nil: no canary
}

// backend is one upstream in one role, with what the request path needs.
type backend struct {
	role  string
	up    Upstream
	rp    *httputil.ReverseProxy
	stats *counters
	// consecutiveErrors counts transport errors since the last answer
	// from this upstream; see finish.
	consecutiveErrors atomic.Int64
}

// backend returns the upstream in role, nil when there is none.
func (t *table) backend(role string) *backend {
	if role == RoleCanary {
		return t.canary
	}
	return t.stable
}

// route decides which upstream serves r. It is the one place where that
// decision is made. Today it is a weighted draw at the 0.001% resolution
// of Percent; math/rand/v2's top-level source is per-thread, so the draw
// takes no lock.
func (t *table) route(_ *http.Request) *backend {
	if t.canary == nil || t.weight <= 0 {
		return t.stable
	}
	if t.weight >= v1alpha1.FullWeight || rand.Int32N(int32(v1alpha1.FullWeight)) < int32(t.weight) {
		return t.canary
	}
	return t.stable
}
