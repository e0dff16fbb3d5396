package standalone

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"

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
	ln       net.Listener
	server   *proxy.Server
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
		settings, err := listenerOf(svc)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: rollout %q: %w", files[i], r.Name, err))
			continue
		}
		f := byAddr[svc.Listen]
		if f == nil || hasZeroPort(svc.Listen) {
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
	return out, errors.Join(errs...)
}

// start listens, with the handlers of the frontend's rollouts in the order
// of its routes; serve serves.
func (f *frontend) start(handlers []http.Handler, listen func(addr string) (net.Listener, error), log *slog.Logger) error {
	var h http.Handler
	if f.single {
		h = handlers[0]
	} else {
		for i := range f.routes {
			f.routes[i].Handler = handlers[i]
		}
		mux, err := proxy.NewMux(f.routes)
		if err != nil {
			return fmt.Errorf("listener %s: %w", f.addr, err)
		}
		h = mux
	}
	server, err := proxy.NewServer(h, f.settings.serverConfig(log))
	if err != nil {
		return fmt.Errorf("listener %s: %w", f.addr, err)
	}
	if f.ln, err = listen(f.addr); err != nil {
		return fmt.Errorf("listener %s: %w", f.addr, err)
	}
	f.server = server
	return nil
}
