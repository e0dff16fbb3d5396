package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/spf13/cobra"

	"github.com/pipit-dev/pipit/internal/client"
	"github.com/pipit-dev/pipit/internal/controlapi"
)

func init() { register(newDashboardCmd) }

// Serving the dashboard of a cluster.
const (
	// defaultDashboardAddr is where pipit dashboard listens by default,
	// kubectl argo rollouts dashboard's port.
	defaultDashboardAddr = "127.0.0.1:3100"
	// dashboardStop bounds the end of the requests in flight at Ctrl-C.
	dashboardStop = 5 * time.Second
)

const dashboardLong = `dashboard serves the web dashboard of the Rollouts of one namespace of a
Kubernetes cluster on this machine, as pipit up serves it for its own rollouts,
until Ctrl-C. It reads the Rollouts through your kubeconfig (--kubeconfig,
$KUBECONFIG or ~/.kube/config; --context; -n/--namespace, default the
context's namespace), and an action (promote, pause, abort…) creates a
RolloutCommand in your name, which the pipit controller applies: the cluster's
RBAC (the pipit-view and pipit-edit roles) decides what you may do, and the
rollout's history names you.

It listens on a loopback address only and needs no login there, like
kubectl argo rollouts dashboard: whoever can reach the port acts with your
kubeconfig, so it refuses any other address. Every action still carries the
session's CSRF token, and requests naming another host than 127.0.0.1, [::1]
or localhost are refused.`

func newDashboardCmd(g *globals) *cobra.Command {
	var opts client.KubeOptions
	var listen string
	cmd := &cobra.Command{
		Use:   "dashboard [--kubeconfig FILE] [--context CONTEXT] [-n NS] [--listen 127.0.0.1:PORT]",
		Short: "Serve the web dashboard of a cluster's Rollouts on this machine, acting as your kubeconfig's user",
		Long:  dashboardLong,
		Example: `  pipit dashboard -n shop
  pipit dashboard --context prod -n shop --listen 127.0.0.1:8080`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := loopbackListen(listen); err != nil {
				return err
			}
			opts.Clock, opts.Log = g.clock, g.log
			k, err := client.NewKube(opts)
			if err != nil {
				return BadInput(err)
			}
			user, err := k.User(cmd.Context())
			if err != nil {
				return err
			}
			return serveDashboard(cmd, k, user, listen, g.log)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.Kubeconfig, "kubeconfig", "", "kubeconfig file (default $KUBECONFIG, else ~/.kube/config)")
	f.StringVar(&opts.Context, "context", "", "kubeconfig context (default: the current context)")
	f.StringVarP(&opts.Namespace, "namespace", "n", "", `namespace of the Rollouts (default: the context's namespace, else "default")`)
	f.StringVar(&listen, "listen", defaultDashboardAddr, "loopback address to serve the dashboard on, HOST:PORT (port 0: any free port)")
	return cmd
}

// loopbackListen refuses a listen address that is not a loopback IP
// address with a port.
func loopbackListen(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return BadInputf("--listen %q: want HOST:PORT, such as %s: %v", addr, defaultDashboardAddr, err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return BadInputf("--listen %q: want a loopback address such as 127.0.0.1 or [::1]: the dashboard acts with your kubeconfig "+
			"without a login, so it serves this machine only", addr)
	}
	return nil
}

// serveDashboard serves the dashboard of k's Rollouts as user on listen,
// logging to log, until the command's context ends.
func serveDashboard(cmd *cobra.Command, k *client.Kube, user, listen string, log *slog.Logger) error {
	ctx := cmd.Context()
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", listen)
	if err != nil {
		return fmt.Errorf("--listen %s: %w", listen, err)
	}
	srv := controlapi.NewServer(listen, controlapi.NewLocalDashboard(k, user, log), log)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	fmt.Fprintf(cmd.OutOrStdout(), "pipit dashboard: http://%s/ui/ — Rollouts of namespace %s on %s, acting as %s; Ctrl-C stops it\n",
		ln.Addr(), k.Namespace(), k.Server(), user)
	select {
	case err := <-served:
		return fmt.Errorf("serving the dashboard: %w", err)
	case <-ctx.Done():
	}
	stop, cancel := context.WithTimeout(context.WithoutCancel(ctx), dashboardStop)
	defer cancel()
	if err := srv.Shutdown(stop); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("stopping the dashboard: %w", err)
	}
	return nil
}
