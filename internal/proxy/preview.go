package proxy

import (
	"net/http"
	"time"

	"github.com/valyala/fasthttp"
)

// Preview returns the handler of a blue-green rollout's preview address:
// every request goes to the canary, whatever its weight, and is counted
// as the canary's, so that the analysis judges the new version on the
// preview's requests before any user reaches it. With no canary, or one
// closed to traffic (rolled back), it answers 503. It takes the net/http
// path only: a preview carries checks, not production load.
func (p *Proxy) Preview() http.Handler { return preview{p} }

type preview struct{ p *Proxy }

// serveFast implements fastHandler, so that a Switch and a Server take a
// preview: every request goes to net/http.
func (preview) serveFast(*fasthttp.RequestCtx) bool { return false }

func (v preview) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !normalizeRequest(w, r) {
		return
	}
	start := time.Now()
	t := v.p.table.Load()
	if t.canary == nil || !t.CanaryOpen() {
		w.Header().Set("Retry-After", unavailableRetry)
		http.Error(w, "no new version to preview: none is being rolled out", http.StatusServiceUnavailable)
		return
	}
	v.p.forward(w, r, t.canary, start)
}
