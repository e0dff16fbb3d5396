package standalone

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/proxy"
	"github.com/pipit-dev/pipit/internal/spec"
)

// frontend is one listen address of the daemon: a proxy server in front
// of one rollout's proxy, or of several rollouts' proxies routed by host
// and path prefix.
type frontend struct {
	addr     string // as written in the rollouts
	settings listenerSettings
	routes   []proxy.MuxRoute
	names    []string // the rollout behind each route
	files    []string // the file of each rollout
	single   bool     // one rollout without host or prefix: no mux needed
	// preview serves a blue-green rollout's new version alone, on its
	// spec.strategy.blueGreen.previewListen: one rollout, never shared.
	preview bool
	ln      net.Listener
	// acc accepts on ln and hands each connection to the current server;
	// a reload that changes the listener's settings starts a new server
	// on it without closing ln.
	acc *acceptor
	// sw holds the handler of the rollouts behind the listener, replaced
	// by a reload that adds, moves or removes one of them.
	sw     *proxy.Switch
	server *proxy.Server
	// retired are the servers of the listener's previous settings, which
	// serve on the connections they had; stop shuts them down.
	retired []*proxy.Server
}

// key identifies a frontend across reloads: its address, or for a ":0"
// address, which is never shared, the address and its one rollout.
func (f *frontend) key() string {
	k := f.addr
	if spec.HasZeroPort(f.addr) {
		k += "#" + f.names[0]
	}
	if f.preview {
		k = "preview " + k
	}
	return k
}

// handlerOf is what f serves of a rollout's proxy p: p itself, or its
// preview.
func (f *frontend) handlerOf(p *proxy.Proxy) http.Handler {
	if f.preview {
		return p.Preview()
	}
	return p
}

// listenerSettings are what the rollouts sharing a listen address must
// agree on, normalised (defaults applied, prefixes parsed and sorted) so
// that settings meaning the same compare equal: an omitted versionHeader
// and "versionHeader: true", or 10.0.0.1/8 and 10.0.0.0/8.
type listenerSettings struct {
	tls                     v1alpha1.ServiceTLS // zero without TLS
	versionHeader           string              // "" announces no version
	trustedProxies          []netip.Prefix
	maxConnections          int
	maxConnectionsPerClient int
}

// listenerOf normalises the listener settings of svc, which the spec
// package has validated.
func listenerOf(svc *v1alpha1.ServiceSpec) (listenerSettings, error) {
	l := listenerSettings{versionHeader: versionHeader(svc),
		maxConnections: proxy.DefaultMaxConnections, maxConnectionsPerClient: proxy.DefaultMaxConnectionsPerClient}
	if svc.TLS != nil {
		l.tls = *svc.TLS
	}
	if lim := svc.Limits; lim != nil {
		if lim.MaxConnections != nil {
			l.maxConnections = int(*lim.MaxConnections)
		}
		if lim.MaxConnectionsPerClient != nil {
			l.maxConnectionsPerClient = int(*lim.MaxConnectionsPerClient)
		}
	}
	for i, s := range svc.TrustedProxies {
		p, err := spec.TrustedProxy(s)
		if err != nil {
			return l, fmt.Errorf("spec.service.trustedProxies[%d]: %w", i, err)
		}
		l.trustedProxies = append(l.trustedProxies, p)
	}
	slices.SortFunc(l.trustedProxies, netip.Prefix.Compare)
	l.trustedProxies = slices.Compact(l.trustedProxies)
	return l, nil
}

// versionHeader is the response header naming the version that answered
// through svc's proxy, or "" when the rollout announces none.
func versionHeader(svc *v1alpha1.ServiceSpec) string {
	if svc.VersionHeader != nil && !*svc.VersionHeader {
		return ""
	}
	return proxy.DefaultVersionHeader
}

// serverConfig is the configuration of the listener's proxy server.
func (l listenerSettings) serverConfig(log *slog.Logger) proxy.ServerConfig {
	return proxy.ServerConfig{
		CertFile: l.tls.CertFile, KeyFile: l.tls.KeyFile,
		MaxConnections: l.maxConnections, MaxConnectionsPerClient: l.maxConnectionsPerClient,
		TrustedProxies: l.trustedProxies,
		Logger:         log,
	}
}

// differences names the settings on which l and o disagree, as the spec
// names them.
func (l listenerSettings) differences(o listenerSettings) []string {
	var out []string
	if l.tls != o.tls {
		out = append(out, "tls")
	}
	if l.versionHeader != o.versionHeader {
		out = append(out, "versionHeader")
	}
	if !slices.Equal(l.trustedProxies, o.trustedProxies) {
		out = append(out, "trustedProxies")
	}
	if l.maxConnections != o.maxConnections || l.maxConnectionsPerClient != o.maxConnectionsPerClient {
		out = append(out, "limits")
	}
	return out
}

// groupFrontends groups rollouts by listen address. Rollouts that share an
// address must each be told apart by host or path prefix and agree on the
// listener's settings; rollouts on different addresses are independent,
// and ":0" addresses are never shared.
func groupFrontends(rollouts []*v1alpha1.Rollout, files []string) ([]*frontend, error) {
	var out []*frontend
	byAddr := map[string]*frontend{}
	var errs []error
	for i, r := range rollouts {
		svc := r.Spec.Service
		if svc == nil {
			continue // a flag is served over OFREP
		}
		settings, err := listenerOf(svc)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: rollout %q: %w", files[i], r.Name, err))
			continue
		}
		f := byAddr[svc.Listen]
		if f == nil || spec.HasZeroPort(svc.Listen) {
			f = &frontend{addr: svc.Listen, settings: settings}
			byAddr[svc.Listen] = f
			out = append(out, f)
		} else if diff := f.settings.differences(settings); len(diff) > 0 {
			errs = append(errs, fmt.Errorf("%s: rollout %q shares %s with rollout %q (%s) but not its %s; rollouts on one listen address must agree on tls, versionHeader, trustedProxies and limits",
				files[i], r.Name, svc.Listen, f.names[0], f.files[0], strings.Join(diff, ", ")))
			continue
		}
		route := proxy.MuxRoute{Host: svc.Host, PathPrefix: svc.PathPrefix}
		if j := slices.IndexFunc(f.routes, func(o proxy.MuxRoute) bool { return o.Host == route.Host && o.PathPrefix == route.PathPrefix }); j >= 0 {
			errs = append(errs, fmt.Errorf("%s: rollout %q listens on %s with host %q and path prefix %q like rollout %q (%s); give each its own host or pathPrefix",
				files[i], r.Name, svc.Listen, svc.Host, svc.PathPrefix, f.names[j], f.files[j]))
			continue
		}
		f.routes = append(f.routes, route)
		f.names = append(f.names, r.Name)
		f.files = append(f.files, files[i])
	}
	for _, f := range out {
		// A lone rollout with a host or prefix still goes through the
		// mux, which answers other requests 404.
		f.single = len(f.routes) == 1 && f.routes[0].Host == "" && f.routes[0].PathPrefix == ""
	}
	previews, err := previewFrontends(rollouts, files, byAddr)
	return append(out, previews...), errors.Join(append(errs, err)...)
}

// previewFrontends are the preview listeners of the blue-green rollouts,
// with the settings of each rollout's own listener. A preview address is
// its rollout's alone: the proxy's listeners (byAddr) and the other
// previews may not share it.
func previewFrontends(rollouts []*v1alpha1.Rollout, files []string, byAddr map[string]*frontend) ([]*frontend, error) {
	var out []*frontend
	var errs []error
	taken := map[string]string{}
	for i, r := range rollouts {
		bg := r.Spec.Strategy.BlueGreen
		if bg == nil || bg.PreviewListen == "" {
			continue
		}
		addr := bg.PreviewListen
		if f := byAddr[addr]; f != nil && !spec.HasZeroPort(addr) {
			errs = append(errs, fmt.Errorf("%s: rollout %q: spec.strategy.blueGreen.previewListen %s is the listen address of rollout %q (%s); a preview needs an address of its own",
				files[i], r.Name, addr, f.names[0], f.files[0]))
			continue
		}
		if other, ok := taken[addr]; ok && !spec.HasZeroPort(addr) {
			errs = append(errs, fmt.Errorf("%s: rollout %q: spec.strategy.blueGreen.previewListen %s is the preview address of rollout %q too; give each its own",
				files[i], r.Name, addr, other))
			continue
		}
		taken[addr] = r.Name
		settings, err := listenerOf(r.Spec.Service)
		if err != nil {
			continue // reported with the rollout's own listener
		}
		out = append(out, &frontend{addr: addr, settings: settings, routes: []proxy.MuxRoute{{}},
			names: []string{r.Name}, files: []string{files[i]}, single: true, preview: true})
	}
	return out, errors.Join(errs...)
}

// handler routes to handlers, the proxies of f's rollouts in the order
// of its routes.
func (f *frontend) handler(handlers []http.Handler) (http.Handler, error) {
	if f.single {
		return handlers[0], nil
	}
	routes := slices.Clone(f.routes)
	for i := range routes {
		routes[i].Handler = handlers[i]
	}
	mux, err := proxy.NewMux(routes)
	if err != nil {
		return nil, fmt.Errorf("listener %s: %w", f.addr, err)
	}
	return mux, nil
}

// start listens through ls, with the handlers of the frontend's rollouts
// in the order of its routes; serve serves.
func (f *frontend) start(ls *listenerSet, handlers []http.Handler, log *slog.Logger) error {
	h, err := f.handler(handlers)
	if err != nil {
		return err
	}
	if f.sw, err = proxy.NewSwitch(h); err != nil {
		return err
	}
	server, err := proxy.NewServer(f.sw, f.settings.serverConfig(log))
	if err != nil {
		return fmt.Errorf("listener %s: %w", f.addr, err)
	}
	if f.ln, err = ls.listen(f.addr); err != nil {
		return fmt.Errorf("listener %s: %w", f.addr, err)
	}
	f.server, f.acc = server, newAcceptor(f.ln, log)
	return nil
}

// serve serves f's current server on a new feed of its acceptor, which
// from now on hands every new connection to it, until the server is shut
// down.
func (f *frontend) serve(wg *sync.WaitGroup, log *slog.Logger) {
	s, feed := f.server, f.acc.newFeed()
	wg.Go(func() {
		if err := s.Serve(feed); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("proxy listener stopped", "addr", f.addr, "err", err)
		}
	})
}

// stop closes the listener, so that nothing new is accepted, then lets
// the requests in flight finish until ctx ends.
func (f *frontend) stop(ctx context.Context) error {
	f.acc.close(ctx)
	errs := []error{f.server.Shutdown(ctx)}
	for _, s := range f.retired {
		errs = append(errs, s.Shutdown(ctx))
	}
	return errors.Join(errs...)
}
