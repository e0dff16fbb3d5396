package proxy

import (
	"errors"
	"net/http"
	"sync/atomic"

	"github.com/valyala/fasthttp"
)

// Switch is a handler whose target, a Proxy or a Mux, can be replaced
// while a Server serves it: each request reads the target once, so a
// request in flight ends on the target it started with and the next one
// takes the new target. A Server of a Switch keeps its fast path.
type Switch struct {
	target atomic.Pointer[fastHandler]
}

// NewSwitch returns a Switch serving h, a *Proxy or a *Mux.
func NewSwitch(h http.Handler) (*Switch, error) {
	s := new(Switch)
	return s, s.Set(h)
}

// Set makes h, a *Proxy or a *Mux, the target of the next requests.
func (s *Switch) Set(h http.Handler) error {
	f, ok := h.(fastHandler)
	if !ok {
		return errors.New("proxy switch: the target must be a Proxy or a Mux")
	}
	s.target.Store(&f)
	return nil
}

// ServeHTTP implements http.Handler.
func (s *Switch) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	(*s.target.Load()).ServeHTTP(w, r)
}

// serveFast implements fastHandler.
func (s *Switch) serveFast(ctx *fasthttp.RequestCtx) bool {
	return (*s.target.Load()).serveFast(ctx)
}
