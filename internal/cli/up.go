package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/pipit-dev/pipit/internal/controlapi"
	"github.com/pipit-dev/pipit/internal/runtime/standalone"
	"github.com/pipit-dev/pipit/internal/spec"
)

func init() { register(newUpCmd) }

func newUpCmd(g *globals) *cobra.Command {
	var files []string
	var stateDir, api string
	cmd := &cobra.Command{
		Use:   "up -f ROLLOUT.yaml [-f MORE.yaml] [--state-dir DIR] [--api ADDR]",
		Short: "Run the standalone daemon: rollout engine, traffic-splitting proxy and control API",
		Long: `up runs pipit on this machine with no Kubernetes and no service mesh. For each rollout in
the files it serves a proxy on the rollout's service.listen address that splits traffic
between the stable and the canary upstream, checks both, runs the analysis and moves the
rollout on. State is kept in an SQLite database in the state directory and written before
it is acted on: after a crash, 'pipit up' again resumes every rollout where it was.

The control API listens on --api (localhost only by default) and needs the token stored
in the state directory; the other pipit commands find both there.`,
		Example: `  pipit up -f examples/canary.yaml
  pipit up -f web.yaml -f api.yaml --state-dir /var/lib/pipit --api 127.0.0.1:7433`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(files) == 0 {
				return BadInputf("no rollout file given: use -f FILE")
			}
			var sources []standalone.Source
			for _, f := range files {
				data, err := readRolloutFile(f)
				if err != nil {
					return BadInput(err)
				}
				sources = append(sources, standalone.Source{File: f, Data: data})
			}
			dir := controlapi.StateDir(stateDir)
			d, err := standalone.Start(cmd.Context(), standalone.Config{Sources: sources, StateDir: dir, APIAddr: api,
				Clock: g.clock, Logger: g.log})
			var cfgErr *standalone.ConfigError
			if errors.As(err, &cfgErr) {
				return BadInput(err)
			}
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "pipit is up: control API on %s, state in %s\n", d.APIAddr(), dir)
			views, _ := d.Rollouts(cmd.Context())
			for _, v := range views {
				fmt.Fprintf(out, "  rollout %s: proxy on %s, %s, stable %s\n", v.Name, v.Listen, v.Status.Phase, v.Status.Stable.Version)
			}
			<-cmd.Context().Done()
			fmt.Fprintln(out, "shutting down")
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			return d.Stop(ctx)
		},
	}
	cmd.Flags().StringArrayVarP(&files, "file", "f", nil, "rollout file (repeatable)")
	cmd.Flags().StringVar(&stateDir, "state-dir", "", "state directory (default $PIPIT_STATE_DIR, else ~/.local/state/pipit)")
	cmd.Flags().StringVar(&api, "api", standalone.DefaultAPIAddr, "control API listen address")
	return cmd
}

// readRolloutFile checks the size before reading, so a huge file is never
// read at all.
func readRolloutFile(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if fi.Size() > spec.MaxFileSize {
		return nil, fmt.Errorf("%s: %d bytes is more than the 1 MiB a rollout file may have", path, fi.Size())
	}
	return os.ReadFile(path)
}
