package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/pipit-dev/pipit/internal/buildinfo"
)

func init() { register(newVersionCmd) }

func newVersionCmd(*globals) *cobra.Command {
	return &cobra.Command{
		Use:     "version",
		Short:   "Print pipit's version",
		Example: "  pipit version",
		Args:    exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintf(cmd.OutOrStdout(), "pipit %s\n", buildinfo.Version())
			return nil
		},
	}
}
