package cli

import (
	"errors"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/pipit-dev/pipit/internal/client"
	"github.com/pipit-dev/pipit/internal/controlapi"
)

func init() { register(newTokenCmd) }

func newTokenCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token create|list|revoke",
		Short: "Manage the daemon's named tokens and their roles",
		Long: `token manages the named tokens of the running daemon's control API, each with a
role: viewer reads (status, get, history, samples), operator also steers rollouts
(deploy, promote, pause, resume, set-weight, approve, reject, abort, retry, undo)
and reloads, admin also manages tokens and rotates cookie keys. The daemon's own
token, in its state directory, is the admin token, named admin.

The history names the token a command came with as its actor. A token's secret
is printed once, when it is made; the daemon keeps only its hash. Every verb
takes --token-file to use a token other than the state directory's.`,
		Example: `  pipit token create ci --role operator > ci.token && chmod 600 ci.token
  pipit deploy web --version v2 --canary http://10.0.0.7:8080 --token-file ci.token
  pipit token list
  pipit token revoke ci`,
		Args: exactArgs(0),
	}
	cmd.AddCommand(newTokenCreateCmd(g), newTokenListCmd(g), newTokenRevokeCmd(g))
	return cmd
}

func newTokenCreateCmd(g *globals) *cobra.Command {
	var flags *backendFlags
	var role, output string
	cmd := &cobra.Command{
		Use:   "create NAME --role viewer|operator|admin|ofrep",
		Short: "Make a named token and print its secret, once",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !controlapi.Role(role).Valid() {
				return BadInputf("--role %q: want viewer, operator, admin or ofrep", role)
			}
			c, err := flags.daemon()
			if err != nil {
				return err
			}
			tok, err := c.CreateToken(cmd.Context(), args[0], controlapi.Role(role))
			if err != nil {
				return tokenError(err)
			}
			if output == "json" {
				return printJSON(cmd.OutOrStdout(), tok)
			}
			fmt.Fprintln(cmd.ErrOrStderr(), "Token", tok.Name, "("+string(tok.Role)+") made; its secret, shown this once:")
			_, err = fmt.Fprintln(cmd.OutOrStdout(), tok.Token)
			return err
		},
	}
	flags = addDaemonFlags(cmd, g)
	cmd.Flags().StringVar(&role, "role", "", "the token's role: viewer, operator or admin on the control API, or ofrep for an application on the OFREP listener")
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text (the secret alone) or json")
	_ = cmd.MarkFlagRequired("role")
	_ = cmd.RegisterFlagCompletionFunc("role", cobra.FixedCompletions([]string{"viewer", "operator", "admin", "ofrep"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

func newTokenListCmd(g *globals) *cobra.Command {
	var flags *backendFlags
	var output string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the named tokens (never their secrets)",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := flags.daemon()
			if err != nil {
				return err
			}
			list, err := c.Tokens(cmd.Context())
			if err != nil {
				return tokenError(err)
			}
			if output == "json" {
				return printJSON(cmd.OutOrStdout(), controlapi.TokenList{Tokens: list})
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tROLE\tCREATED")
			fmt.Fprintf(tw, "%s\t%s\t%s\n", controlapi.AdminName, controlapi.RoleAdmin, "(the state directory's token)")
			for _, t := range list {
				fmt.Fprintf(tw, "%s\t%s\t%s\n", t.Name, t.Role, t.Created.Local().Format(time.DateTime))
			}
			return tw.Flush()
		},
	}
	flags = addDaemonFlags(cmd, g)
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table or json")
	return cmd
}

func newTokenRevokeCmd(g *globals) *cobra.Command {
	var flags *backendFlags
	cmd := &cobra.Command{
		Use:   "revoke NAME",
		Short: "Make a named token stop working, at once",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := flags.daemon()
			if err != nil {
				return err
			}
			if err := c.RevokeToken(cmd.Context(), args[0]); err != nil {
				return tokenError(err)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "Token %s revoked.\n", args[0])
			return err
		},
	}
	flags = addDaemonFlags(cmd, g)
	return cmd
}

// tokenError makes the daemon's refusal of a malformed request bad
// input; the rest stay failures.
func tokenError(err error) error {
	if errors.Is(err, client.ErrBadRequest) {
		return BadInputf("%v", err)
	}
	return err
}
