package cli

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

func init() { register(newKeysCmd) }

func newKeysCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "keys",
		Short: "Manage the keys that sign the proxy's sticky-session cookies",
		Long: `keys manages the secret keys with which the daemon's proxies sign sticky-session
cookies. They are kept in the state directory's cookie-keys file (mode 0600), made
when the daemon first starts. A cookie signed with another key, tampered with or
expired is ignored: its user gets a fresh draw and a fresh cookie.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return BadInputf("unknown command %q for %q", args[0], cmd.CommandPath())
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newKeysRotateCmd(g))
	return cmd
}

func newKeysRotateCmd(g *globals) *cobra.Command {
	var flags *backendFlags
	cmd := &cobra.Command{
		Use:   "rotate",
		Short: "Sign sticky cookies with a new key, honouring the previous key's for one cookie TTL",
		Long: `rotate asks the running daemon for a new key to sign the sticky-session cookies of
every rollout's proxy. New cookies are signed with it at once. Cookies signed with
the previous key keep their users for one cookie TTL (each rollout's
stickySession.ttl) after the rotation, then are ignored, so that a rotation moves
nobody. The daemon saves both keys and the time of the rotation, so a restart keeps
that rule. The key before the previous one is dropped: rotating twice within one
TTL sends the users of the first key to a fresh draw.

Rotate when the cookie-keys file may have been read by someone else, or as a habit.

Sticky cookies are those of pipit's own proxy (pipit up): with --kube there is no
key to rotate, and the verb exits 2. It exits 1 if the daemon cannot be reached or
the rotation failed; then nothing changed.`,
		Example: `  pipit keys rotate
  pipit keys rotate --state-dir /var/lib/pipit`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if flags.kube {
				return BadInputf("pipit keys rotate does not go with --kube: sticky cookies are signed by the standalone proxy (pipit up); in Kubernetes the mesh or gateway keeps sessions")
			}
			c, err := flags.daemon()
			if err != nil {
				return err
			}
			rot, err := c.RotateCookieKeys(cmd.Context())
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "Rotated the sticky-cookie key at %s; new cookies are signed with the new key.\n", rot.RotatedAt.Local().Format(timeLayout))
			if len(rot.Rollouts) == 0 {
				_, err = fmt.Fprintln(out, "No rollout has sticky sessions.")
				return err
			}
			fmt.Fprintln(out, "Cookies signed with the previous key are honoured until:")
			tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
			for _, g := range rot.Rollouts {
				fmt.Fprintf(tw, "  %s\t%s\t(%s after the rotation)\n", g.Name, g.PreviousUntil.Local().Format(timeLayout), g.PreviousUntil.Sub(rot.RotatedAt))
			}
			return tw.Flush()
		},
	}
	flags = addDaemonFlags(cmd, g)
	// Accepted only to be refused with a reason: the verb has no cluster
	// to steer, but kubectl users write --kube out of habit.
	cmd.Flags().BoolVar(&flags.kube, "kube", false, "")
	_ = cmd.Flags().MarkHidden("kube")
	return cmd
}

// timeLayout writes a moment for people, with its zone.
const timeLayout = time.DateTime + " MST"
