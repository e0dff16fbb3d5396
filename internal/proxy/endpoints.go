package proxy

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/pipit-dev/pipit/internal/proxy/upstream"
	"github.com/pipit-dev/pipit/internal/traffic"
)

// SetEndpoints routes role (RoleStable or RoleCanary) to urls, the ready
// replicas of version; requests are spread round-robin over them, and a
// request that could not connect is retried on the next one. It is how a
// target steers the proxy.
//
// An empty version takes the canary role away. A version with no urls has
// no ready replica right now: a canary without one gets no request (its
// share, and the users its rules or sticky cookies name, go to stable),
// and a stable without one is answered 503 by the proxy itself.
//
// Counters belong to the version, not to its replicas: replicas coming
// and going keep them, and Stats reports the version as one. The new
// routing table is swapped in at once; requests already routed finish on
// the replica they were sent to.
//
// A health checker (NewHealthChecker) probes every replica, and takes
// one that fails out of rotation until it passes again; a replica that
// stays keeps its place in or out of rotation.
func (p *Proxy) SetEndpoints(role, version string, urls []*url.URL) error {
	if role != RoleStable && role != RoleCanary {
		return fmt.Errorf("unknown role %q", role)
	}
	if version == "" && role == RoleStable {
		return errors.New("stable endpoints: a version is required")
	}
	for _, u := range urls {
		if u == nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("%s endpoint of %s: want an http or https URL with a host", role, version)
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	old := p.table.Load()
	prev := old.backend(role)
	var b *backend
	if version != "" {
		b = p.endpointsBackend(role, version, urls, prev)
	}
	stable, canary := old.stable, b
	if role == RoleStable {
		stable, canary = b, old.canary
	}
	p.table.Store(p.withUpstreams(old, stable, canary))
	if prev != nil && prev != b {
		// The connections kept to replicas no longer routed to would
		// otherwise wait for the idle timeout.
		for _, ep := range prev.up.replicas.Endpoints() {
			if b == nil || !slices.Contains(b.up.replicas.Endpoints(), ep) {
				ep.CloseIdle()
			}
		}
	}
	return nil
}

// endpointsBackend returns prev when it already serves version on urls,
// else a new backend. Within a version it keeps prev's counters, and the
// endpoints (with their kept-alive connections) of the replicas that stay.
func (p *Proxy) endpointsBackend(role, version string, urls []*url.URL, prev *backend) *backend {
	same := prev != nil && prev.up.Version == version
	sameURL := func(ep *upstream.Endpoint, u *url.URL) bool { return ep.URL().String() == u.String() }
	if same && slices.EqualFunc(prev.up.replicas.Endpoints(), urls, sameURL) {
		return prev
	}
	up := Upstream{Version: version}
	var endpoints []*upstream.Endpoint
	for _, u := range urls {
		u := *u
		var ep *upstream.Endpoint
		if same {
			if i := slices.IndexFunc(prev.up.replicas.Endpoints(), func(e *upstream.Endpoint) bool { return sameURL(e, &u) }); i >= 0 {
				ep = prev.up.replicas.Endpoints()[i]
			}
		}
		if ep == nil {
			ep = upstream.NewEndpoint(&u, &p.transportCfg)
		}
		endpoints = append(endpoints, ep)
		if up.URL == nil {
			up.URL = ep.URL()
		} else {
			up.Replicas = append(up.Replicas, ep.URL())
		}
	}
	up.replicas = upstream.NewGroup(endpoints)
	return p.newBackend(role, up, prev)
}

// initialUpstreams sets the upstreams of a new Proxy. A stable with a
// Version but no URL (and no canary) is a proxy steered by SetEndpoints
// whose stable has no ready replica yet.
func (p *Proxy) initialUpstreams(cfg Config) error {
	if cfg.Stable.URL == nil && cfg.Stable.Version != "" && cfg.Canary == nil {
		return p.SetEndpoints(RoleStable, cfg.Stable.Version, nil)
	}
	return p.setUpstreams(cfg.Stable, cfg.Canary)
}

// unready reports whether b has nowhere to send a request: a version
// steered by SetEndpoints with no ready replica. Only a stable can be
// routed to in that state (see route.Table.Route).
func (b *backend) unready() bool { return b.up.replicas != nil && len(b.up.replicas.Endpoints()) == 0 }

// errNoReplica is what a request to an unready stable fails with.
var errNoReplica = errors.New("no ready replica")

// answerUnready answers an unready stable on the net/http path and
// counts it against the version: its users got no answer from it.
func (p *Proxy) answerUnready(w http.ResponseWriter, b *backend, start time.Time) {
	p.writeStd(w, b, unreadyUpstream(b))
	p.account(b, traffic.ClassError, time.Since(start), errNoReplica.Error())
}

// answerUnreadyFast is answerUnready on the fast path.
func (p *Proxy) answerUnreadyFast(ctx *fasthttp.RequestCtx, b *backend) {
	p.writeFast(ctx, b, unreadyUpstream(b))
	p.account(b, traffic.ClassError, time.Since(ctx.Time()), errNoReplica.Error())
}
