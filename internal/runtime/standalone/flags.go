package standalone

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"slices"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/controlapi"
	"github.com/pipit-dev/pipit/internal/flag"
	"github.com/pipit-dev/pipit/internal/flag/ofrep"
	"github.com/pipit-dev/pipit/internal/metric"
	"github.com/pipit-dev/pipit/internal/proxy/route"
	"github.com/pipit-dev/pipit/internal/store"
)

// OFREPAddressFile, in the state directory, holds the address the OFREP
// listener (Config.OFREPAddr) listens on, for applications and tests
// started with ":0".
const OFREPAddressFile = "ofrep-address"

// newFlagPlane builds what a flag rollout has instead of a proxy: the
// flag, serving stable's variant, and the built-in metrics measured on
// the outcomes its applications report.
func (m *managed) newFlagPlane(spec *v1alpha1.FlagSpec, goals []v1alpha1.Goal, stable v1alpha1.VersionRef) (*dataPlane, error) {
	f, err := flag.Compile(spec, route.Options{Name: m.name, Logger: m.env.log, Clock: m.clock})
	if err != nil {
		return nil, err
	}
	if !f.HasVariant(stable.Version) {
		return nil, fmt.Errorf("the saved stable variant %q is no longer one of flag %s's variants", stable.Version, spec.Key)
	}
	names := make([]string, len(goals))
	for i, g := range goals {
		names[i] = g.Name
	}
	live := flag.NewLive(f, stable.Version, names)
	return &dataPlane{flag: live, builtin: metric.NewBuiltin(live, m.clock),
		health: func(string) (bool, string, bool) { return false, "", false }}, nil
}

// checkFlags refuses flag rollouts without an OFREP listener to serve
// them, and two rollouts of one flag.
func checkFlags(rollouts []*v1alpha1.Rollout, files []string, ofrepAddr string) error {
	var errs []error
	keys := map[string]string{}
	for i, r := range rollouts {
		f := r.Spec.Flag
		if f == nil {
			continue
		}
		if ofrepAddr == "" {
			errs = append(errs, fmt.Errorf("%s: rollout %q rolls out flag %s: serve flags with pipit up --ofrep ADDR", files[i], r.Name, f.Key))
		}
		if other, dup := keys[f.Key]; dup {
			errs = append(errs, fmt.Errorf("%s: rollout %q rolls out flag %s, as rollout %q does; a flag has one rollout", files[i], r.Name, f.Key, other))
		}
		keys[f.Key] = r.Name
	}
	return errors.Join(errs...)
}

// daemonFlags are the flags of the daemon's rollouts, for the OFREP
// server.
type daemonFlags struct{ d *Daemon }

var _ ofrep.Flags = daemonFlags{}

// Flag implements ofrep.Flags.
func (f daemonFlags) Flag(key string) (*flag.Live, bool) {
	for _, l := range f.All() {
		if l.Flag().Key() == key {
			return l, true
		}
	}
	return nil, false
}

// All implements ofrep.Flags.
func (f daemonFlags) All() []*flag.Live {
	var out []*flag.Live
	for _, m := range f.d.all() {
		if l := m.dataPlane().flag; l != nil {
			out = append(out, l)
		}
	}
	slices.SortFunc(out, func(a, b *flag.Live) int { return cmp.Compare(a.Flag().Key(), b.Flag().Key()) })
	return out
}

// startOFREP listens for OFREP at addr, behind the OFREP token, notes
// the address in the state directory and in each flag rollout's view.
func (d *Daemon) startOFREP(addr string) error {
	if addr == "" {
		return nil
	}
	token, err := store.LoadOrCreateTokenFile(d.stateDir, store.OFREPTokenFile)
	if err != nil {
		return err
	}
	if d.ofrepLn, err = d.listeners.listen(addr); err != nil {
		return fmt.Errorf("OFREP: %w", err)
	}
	d.ofrepName = addr
	bound := d.ofrepLn.Addr().String()
	if err := writeFileAtomic(filepath.Join(d.stateDir, OFREPAddressFile), []byte(bound+"\n")); err != nil {
		return err
	}
	d.ofrep = ofrep.NewServer(bound, ofrep.NewHandler(daemonFlags{d}, ofrepAuthenticator{own: controlapi.SingleToken(token), db: d.db}, d.log), d.log)
	for _, m := range d.all() {
		d.noteOFREPAddr(m)
	}
	return nil
}

// noteOFREPAddr tells m, if it is a flag rollout, where it is served.
func (d *Daemon) noteOFREPAddr(m *managed) {
	if d.ofrepLn != nil && m.dataPlane().flag != nil {
		m.setAddr(d.ofrepLn.Addr().String(), false)
	}
}

// serveOFREP serves the OFREP listener, if there is one.
func (d *Daemon) serveOFREP() {
	if d.ofrep == nil {
		return
	}
	d.serving.Go(func() {
		if err := d.ofrep.Serve(d.ofrepLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			d.log.Error("OFREP listener stopped", "err", err)
		}
	})
}

// stopOFREP shuts the OFREP listener down gracefully, until ctx ends.
func (d *Daemon) stopOFREP(ctx context.Context) error {
	if d.ofrep == nil {
		return nil
	}
	return d.ofrep.Shutdown(ctx)
}

// OFREPAddr is where the OFREP listener listens; ok is false without one.
func (d *Daemon) OFREPAddr() (addr string, ok bool) {
	if d.ofrepLn == nil {
		return "", false
	}
	return d.ofrepLn.Addr().String(), true
}

// ofrepSocket is the OFREP listener as a socket to hand over, if any.
func (d *Daemon) ofrepSocket() []namedListener {
	if d.ofrepLn == nil {
		return nil
	}
	return []namedListener{{d.ofrepName, d.ofrepLn}}
}

// closeListener closes ln, if there is one.
func closeListener(ln net.Listener) {
	if ln != nil {
		ln.Close()
	}
}
