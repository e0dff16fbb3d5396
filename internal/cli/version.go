package cli

import (
	"fmt"
	"runtime/debug"

	"github.com/spf13/cobra"
)

func init() { register(newVersionCmd) }

func newVersionCmd(*globals) *cobra.Command {
	return &cobra.Command{
		Use:     "version",
		Short:   "Print pipit's version",
		Example: "  pipit version",
		Args:    exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			v := "(devel)"
			if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
				v = bi.Main.Version
			}
			fmt.Fprintf(cmd.OutOrStdout(), "pipit %s\n", v)
			return nil
		},
	}
}
