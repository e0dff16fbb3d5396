package standalone

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"reflect"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/proxy"
)

// frontend is one listen address of the daemon: a proxy server in front
// of one rollout's proxy, or of several rollouts' proxies routed by host
// and path prefix.
type frontend struct {
	addr   string // as written in the rollouts
	tls    *v1alpha1.ServiceTLS
	routes []proxy.MuxRoute
	names  []string // the rollout behind each route
	single bool     // one rollout without host or prefix: no mux needed
	ln     net.Listener
	server *proxy.Server
}

// groupFrontends groups rollouts by listen address. Rollouts that share an
// address must each be told apart by host or path prefix and agree on TLS;
// ":0" addresses are never shared.
func groupFrontends(rollouts []*v1alpha1.Rollout, files []string) ([]*frontend, error) {
	var out []*frontend
	byAddr := map[string]*frontend{}
	routeOwner := map[[2]string]string{}
	var errs []error
	for i, r := range rollouts {
		svc := r.Spec.Service
		f := byAddr[svc.Listen]
		if f == nil || hasZeroPort(svc.Listen) {
			f = &frontend{addr: svc.Listen, tls: svc.TLS, single: true}
			byAddr[svc.Listen] = f
			out = append(out, f)
		} else {
			f.single = false
			if !reflect.DeepEqual(f.tls, svc.TLS) {
				errs = append(errs, fmt.Errorf("%s: rollout %q shares %s with other rollouts but not their TLS settings", files[i], r.Name, svc.Listen))
			}
		}
		key := [2]string{svc.Host, svc.PathPrefix}
		if owner, dup := routeOwner[key]; dup && !hasZeroPort(svc.Listen) {
			errs = append(errs, fmt.Errorf("%s: rollout %q listens on %s with host %q and path prefix %q like rollout %q; give each its own host or pathPrefix",
				files[i], r.Name, svc.Listen, svc.Host, svc.PathPrefix, owner))
			continue
		}
		routeOwner[key] = r.Name
		f.routes = append(f.routes, proxy.MuxRoute{Host: svc.Host, PathPrefix: svc.PathPrefix})
		f.names = append(f.names, r.Name)
	}
	for _, f := range out {
		if len(f.routes) == 1 && (f.routes[0].Host != "" || f.routes[0].PathPrefix != "") {
			f.single = false // honour a lone host or prefix: other requests get 404
		}
	}
	return out, errors.Join(errs...)
}

// start listens, with the handlers of the frontend's rollouts in the order
// of its routes; serve serves.
func (f *frontend) start(handlers []http.Handler, log *slog.Logger) error {
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
	cfg := proxy.ServerConfig{Logger: log}
	if f.tls != nil {
		cfg.CertFile, cfg.KeyFile = f.tls.CertFile, f.tls.KeyFile
	}
	server, err := proxy.NewServer(h, cfg)
	if err != nil {
		return fmt.Errorf("listener %s: %w", f.addr, err)
	}
	if f.ln, err = net.Listen("tcp", f.addr); err != nil {
		return fmt.Errorf("listener %s: %w", f.addr, err)
	}
	f.server = server
	return nil
}
