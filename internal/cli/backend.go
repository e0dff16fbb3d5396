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
	stateDir  string
	api       string
	tokenFile string
}

// addBackendFlags adds the flags that pick the daemon to cmd.
func addBackendFlags(cmd *cobra.Command) *backendFlags {
	b := &backendFlags{}
	f := cmd.Flags()
	f.StringVar(&b.stateDir, "state-dir", "",
		"the daemon's state directory (default $PIPIT_STATE_DIR, else $XDG_STATE_HOME/pipit, else ~/.local/state/pipit)")
	f.StringVar(&b.api, "api", "", "control API address, HOST:PORT or http(s) URL (default: the one the daemon wrote in the state directory)")
	f.StringVar(&b.tokenFile, "token-file", "", "file holding the control API token, mode 0600 (default: the state directory's token)")
	return b
}

// backend returns the Backend the flags point at. A malformed --api is bad
// input; a daemon that cannot be found is a failed operation.
func (b *backendFlags) backend() (controlapi.Backend, error) {
	dir := controlapi.StateDir(b.stateDir)
	if b.api == "" && b.tokenFile == "" {
		return client.FromStateDir(dir)
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
	return client.NewHTTP(base, token), nil
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
