package cli

import (
	"fmt"
	"net/url"

	"github.com/spf13/cobra"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/engine"
)

func init() { register(newDeployCmd) }

func newDeployCmd(*globals) *cobra.Command {
	var (
		canary v1alpha1.VersionRef
		flags  *commandFlags
	)
	cmd := &cobra.Command{
		Use:   "deploy NAME --canary URL",
		Short: "Start rolling a new version out",
		Long: `deploy starts rolling out the version served at --canary: it waits for it to
become healthy, then gives it the share of traffic of each step in turn while the
checks pass. --version labels it in status and history; it defaults to the URL.

Deploying while another canary is in flight replaces that canary and starts the
analysis again from the first step.

It exits 2 if the URL is not an absolute http or https URL, and 1 if the rollout
cannot take a new canary now (for example while it is promoting).`,
		Example: `  pipit deploy web --canary http://127.0.0.1:9002 --version v2
  pipit deploy web --canary http://10.0.0.7:8080 --version "$GIT_SHA" --reason "release 1.4"`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkUpstreamURL(canary.URL); err != nil {
				return BadInputf("--canary: %v", err)
			}
			if canary.Version == "" {
				canary.Version = canary.URL
			}
			return flags.submit(cmd, args[0], engine.Command{Kind: engine.CommandDeploy, Canary: &canary})
		},
	}
	flags = addCommandFlags(cmd)
	cmd.Flags().StringVar(&canary.URL, "canary", "", "base URL of the new version, such as http://127.0.0.1:9002 (required)")
	cmd.Flags().StringVar(&canary.Version, "version", "", "label of the new version (default: the URL)")
	return cmd
}

// checkUpstreamURL accepts an absolute http or https URL with a host.
func checkUpstreamURL(s string) error {
	if s == "" {
		return fmt.Errorf("a URL is required")
	}
	u, err := url.Parse(s)
	if err != nil {
		return err
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q is not an absolute http or https URL", s)
	}
	return nil
}
