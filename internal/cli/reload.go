package cli

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/pipit-dev/pipit/internal/controlapi"
)

func init() { register(newReloadCmd) }

func newReloadCmd(g *globals) *cobra.Command {
	var flags *backendFlags
	cmd := &cobra.Command{
		Use:   "reload [--state-dir DIR] [--token-file FILE]",
		Short: "Make the running daemon read its rollout files again",
		Long: `reload asks the running daemon (pipit up) to read again the files it was started
with, as kill -HUP does, and prints what changed: rollouts added, removed or
changed, and for each change the fields of the spec that differ. Listeners are
opened, re-routed or closed; requests in flight are not failed.

Every file is checked first. A file that does not validate, or a change that
cannot be made now (such as service.stable while a canary is in flight), changes
nothing: reload prints why, as pipit validate would, and exits 2. It exits 1 if
the daemon cannot be reached. docs/operations.md says what each change does to
a rollout in flight.`,
		Example: `  pipit reload
  pipit reload --state-dir /var/lib/pipit`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := flags.daemon()
			if err != nil {
				return err
			}
			res, err := c.Reload(cmd.Context())
			if errors.Is(err, controlapi.ErrInvalidConfig) {
				fmt.Fprintln(cmd.OutOrStdout(), err.Error())
				return BadInputf("reload refused; nothing was changed")
			}
			if err != nil {
				return err
			}
			return printReload(cmd.OutOrStdout(), res)
		},
	}
	flags = addDaemonFlags(cmd, g)
	return cmd
}

// printReload sums a reload up, one line per rollout it touched.
func printReload(out io.Writer, res controlapi.ReloadResult) error {
	if len(res.Added)+len(res.Removed)+len(res.Changed) == 0 {
		_, err := fmt.Fprintln(out, "Reloaded: nothing changed.")
		return err
	}
	fmt.Fprintln(out, "Reloaded:")
	for _, name := range res.Added {
		fmt.Fprintf(out, "  added    %s\n", name)
	}
	for _, c := range res.Changed {
		fmt.Fprintf(out, "  changed  %s: %s\n", c.Name, strings.Join(c.Fields, ", "))
	}
	for _, name := range res.Removed {
		fmt.Fprintf(out, "  removed  %s (its state is kept)\n", name)
	}
	return nil
}
