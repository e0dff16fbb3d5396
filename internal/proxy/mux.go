package proxy

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"

	"github.com/valyala/fasthttp"
)

// MuxRoute sends the requests for one host and path prefix to a handler,
// usually one rollout's Proxy.
type MuxRoute struct {
	// Host is matched against the request's host without its port, case
	// insensitively; a Host with a port must match host and port. Empty
	// matches any host.
	Host string
	// PathPrefix is matched on whole path segments: "/api" matches
	// "/api" and "/api/users", not "/apis". A prefix ending in "/"
	// matches what starts with it. Empty is "/", every path. It is
	// matched on the normal form of the request's path (see
	// normalizePath), escapes such as %2F kept: "/x/../api" and
	// "/%61pi" are under "/api", "/api%2Fx" is not.
	PathPrefix string
	// Handler serves the matching requests.
	Handler http.Handler
}

// Mux routes requests by host and path prefix to one of several handlers,
// so several services share one listener. A route for the request's exact
// host wins over a route for any host; among those, the longest matching
// prefix wins. A request no route matches is answered 404.
type Mux struct {
	routes []muxRoute // most specific first
}

type muxRoute struct {
	host   string // lower case; empty: any
	port   bool   // host includes a port
	prefix string
	h      http.Handler
	fast   fastHandler // nil when h has no fast path
}

// NewMux checks routes and returns their mux. Two routes for the same
// host and prefix are an error.
func NewMux(routes []MuxRoute) (*Mux, error) {
	if len(routes) == 0 {
		return nil, errors.New("mux: no routes")
	}
	m := &Mux{}
	seen := map[[2]string]bool{}
	for i, r := range routes {
		if r.Handler == nil {
			return nil, fmt.Errorf("mux route %d: no handler", i)
		}
		prefix := r.PathPrefix
		if prefix == "" {
			prefix = "/"
		}
		if !strings.HasPrefix(prefix, "/") {
			return nil, fmt.Errorf("mux route %d: path prefix %q must start with /", i, r.PathPrefix)
		}
		host := strings.ToLower(r.Host)
		if strings.ContainsAny(host, "/ ") {
			return nil, fmt.Errorf("mux route %d: %q is not a host name", i, r.Host)
		}
		key := [2]string{host, prefix}
		if seen[key] {
			return nil, fmt.Errorf("mux route %d: host %q and path prefix %q are already routed", i, r.Host, prefix)
		}
		seen[key] = true
		mr := muxRoute{host: host, port: hasPort(host), prefix: prefix, h: r.Handler}
		mr.fast, _ = r.Handler.(fastHandler)
		m.routes = append(m.routes, mr)
	}
	slices.SortStableFunc(m.routes, func(a, b muxRoute) int {
		if (a.host == "") != (b.host == "") {
			if a.host == "" {
				return 1
			}
			return -1
		}
		return len(b.prefix) - len(a.prefix)
	})
	return m, nil
}

func hasPort(host string) bool {
	_, _, err := net.SplitHostPort(host)
	return err == nil
}

// match returns the route for host and path, nil when none matches. The
// byte-slice conversions in the comparisons do not allocate.
func (m *Mux) match(host, path []byte) *muxRoute {
	hostOnly := host
	if i := lastColon(host); i >= 0 {
		hostOnly = host[:i]
	}
	for i := range m.routes {
		r := &m.routes[i]
		if r.host != "" {
			h := hostOnly
			if r.port {
				h = host
			}
			if !equalFoldASCII(h, r.host) {
				continue
			}
		}
		if prefixMatches(path, r.prefix) {
			return r
		}
	}
	return nil
}

// lastColon finds the port separator of a host, skipping the colons of a
// bracketed IPv6 address; -1 when there is no port.
func lastColon(host []byte) int {
	for i := len(host) - 1; i >= 0; i-- {
		switch host[i] {
		case ':':
			return i
		case ']':
			return -1
		}
	}
	return -1
}

func equalFoldASCII(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

func prefixMatches(path []byte, prefix string) bool {
	if len(path) < len(prefix) || string(path[:len(prefix)]) != prefix {
		return false
	}
	return len(path) == len(prefix) || prefix[len(prefix)-1] == '/' || path[len(prefix)] == '/'
}

// ServeHTTP implements http.Handler. The prefix is matched on the
// normal form of the request's path, still escaped (normalizeRequest),
// as on the fast path: "/api%2Fx" is not under "/api".
func (m *Mux) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !normalizeRequest(w, r) {
		return
	}
	host := r.Host
	if host == "" {
		host = r.URL.Host
	}
	path := r.URL.EscapedPath()
	route := m.match([]byte(host), []byte(path))
	if route == nil {
		http.Error(w, notFoundMessage(host, path), http.StatusNotFound)
		return
	}
	route.h.ServeHTTP(w, r)
}

// serveFast implements fastHandler: requests for handlers without a fast
// path go to net/http. The Server has put the target in normal form.
func (m *Mux) serveFast(ctx *fasthttp.RequestCtx) bool {
	h := &ctx.Request.Header
	path, _ := splitRequestURI(h.RequestURI())
	route := m.match(h.Host(), path)
	if route == nil {
		ctx.Response.SetStatusCode(http.StatusNotFound)
		ctx.Response.Header.SetContentType("text/plain; charset=utf-8")
		ctx.Response.SetBodyString(notFoundMessage(string(h.Host()), string(path)) + "\n")
		return true
	}
	return route.fast != nil && route.fast.serveFast(ctx)
}

func notFoundMessage(host, path string) string {
	return fmt.Sprintf("pipit: no service is routed for host %q and path %q", host, path)
}
