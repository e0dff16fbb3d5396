package cli

import (
	"os"
	"os/user"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/pipit-dev/pipit/internal/client"
	"github.com/pipit-dev/pipit/internal/controlapi"
)

// backendFlags say which pipit a command steers. Every verb that reads or
// steers rollouts shares them, and builds its Backend here only, so that
// another kind of backend needs one more flag in this file.
type backendFlags struct {
	// g hands the clients the command line's clock and logger.
	g *globals

	stateDir  string
	api       string
	tokenFile string
	caFile    string

	// kube steers Rollouts in a cluster instead of a daemon; the other
	// three pick the cluster and namespace as kubectl's flags do.
	kube        bool
	kubeconfig  string
	kubeContext string
	namespace   string
}

// addBackendFlags adds the flags that pick the daemon, or the cluster, to
// cmd, and completes the NAME it takes first with the rollouts they have.
func addBackendFlags(cmd *cobra.Command, g *globals) *backendFlags {
	b := addDaemonFlags(cmd, g)
	cmd.ValidArgsFunction = b.completeRolloutNames
	f := cmd.Flags()
	f.BoolVar(&b.kube, "kube", false,
		"steer Rollouts in a Kubernetes cluster, through its API server and the pipit controller, instead of a daemon")
	f.StringVar(&b.kubeconfig, "kubeconfig", "", "kubeconfig file, with --kube (default $KUBECONFIG, else ~/.kube/config)")
	f.StringVar(&b.kubeContext, "context", "", "kubeconfig context, with --kube (default: the current context)")
	f.StringVarP(&b.namespace, "namespace", "n", "",
		`namespace of the Rollouts, with --kube (default: the context's namespace, else "default")`)
	return b
}

// addDaemonFlags adds the flags that pick the daemon to cmd, for verbs that
// only a daemon serves.
func addDaemonFlags(cmd *cobra.Command, g *globals) *backendFlags {
	b := &backendFlags{g: g}
	f := cmd.Flags()
	f.StringVar(&b.stateDir, "state-dir", "",
		"the daemon's state directory (default $PIPIT_STATE_DIR, else $XDG_STATE_HOME/pipit, else ~/.local/state/pipit)")
	f.StringVar(&b.api, "api", "", "control API address, HOST:PORT or http(s) URL (default: the one the daemon wrote in the state directory)")
	f.StringVar(&b.tokenFile, "token-file", "", "file holding the control API token, mode 0600 (default: the state directory's token)")
	f.StringVar(&b.caFile, "ca-file", "", "PEM file of the certificate authority of a daemon serving TLS (default: the system's)")
	return b
}

// backend returns the Backend the flags point at. A malformed --api or
// kubeconfig is bad input; a daemon or cluster that cannot be reached is a
// failed operation.
func (b *backendFlags) backend() (controlapi.Backend, error) {
	if b.kube {
		return b.kubeBackend()
	}
	if b.kubeconfig != "" || b.kubeContext != "" || b.namespace != "" {
		return nil, BadInputf("--kubeconfig, --context and --namespace go with --kube")
	}
	d, err := b.daemon()
	if err != nil {
		return nil, err // not a nil *client.HTTP in an interface
	}
	return d, nil
}

// daemon returns the client of the daemon the flags point at, trusting
// --ca-file when it is given.
func (b *backendFlags) daemon() (*client.HTTP, error) {
	c, err := b.daemonClient()
	if err != nil || b.caFile == "" {
		return c, err
	}
	if err := c.TrustCA(b.caFile); err != nil {
		return nil, BadInputf("--ca-file: %v", err)
	}
	return c, nil
}

// daemonClient is daemon without --ca-file.
func (b *backendFlags) daemonClient() (*client.HTTP, error) {
	dir := controlapi.StateDir(b.stateDir)
	if b.api == "" && b.tokenFile == "" {
		c, err := client.FromStateDir(dir)
		if err != nil {
			return nil, err
		}
		c.Clock = b.g.clock
		return c, nil
	}
	var base string
	if b.api != "" {
		u, err := client.BaseURL(b.api)
		if err != nil {
			return nil, BadInputf("--api: %v", err)
		}
		base = u
	} else {
		addr, err := client.ReadAddress(dir)
		if err != nil {
			return nil, err
		}
		if base, err = client.BaseURL(addr); err != nil {
			return nil, err
		}
	}
	tokenFile := b.tokenFile
	if tokenFile == "" {
		tokenFile = filepath.Join(dir, controlapi.TokenFile)
	}
	token, err := client.ReadToken(tokenFile)
	if err != nil {
		return nil, err
	}
	c := client.NewHTTP(base, token)
	c.Clock = b.g.clock
	return c, nil
}

// kubeBackend returns the client of the cluster the kubeconfig flags pick.
// Building it contacts nothing, so its errors are all bad input.
func (b *backendFlags) kubeBackend() (controlapi.Backend, error) {
	if b.stateDir != "" || b.api != "" || b.tokenFile != "" || b.caFile != "" {
		return nil, BadInputf("--state-dir, --api, --token-file and --ca-file pick a pipit daemon; they do not go with --kube")
	}
	k, err := client.NewKube(client.KubeOptions{Kubeconfig: b.kubeconfig, Context: b.kubeContext, Namespace: b.namespace,
		Clock: b.g.clock, Log: b.g.log})
	if err != nil {
		return nil, BadInputf("--kube: %v", err)
	}
	return k, nil
}

// actor names who gives a command, for the history: $PIPIT_ACTOR (set it
// in CI to name the pipeline), else the user running pipit. An empty
// actor lets the engine say "an operator".
func actor() string {
	if a := os.Getenv("PIPIT_ACTOR"); a != "" {
		return a
	}
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return ""
}
