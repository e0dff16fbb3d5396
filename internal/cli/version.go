package cli

import (
	"github.com/spf13/cobra"

	"github.com/pipit-dev/pipit/internal/buildinfo"
)

func init() { register(newVersionCmd) }

func newVersionCmd(*globals) *cobra.Command {
	var output *outputFormat
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print pipit's version, commit and commit time",
		Long: `version prints the version of pipit, the commit it was built from and when that
commit was made, as Go recorded them in the binary (release builds set them with
-ldflags instead), and the Go toolchain that built it. pipit --version prints the same.

-o json and -o yaml print the same facts as a document.`,
		Example: "  pipit version\n  pipit --version\n  pipit version -o json | jq -r .commit",
		Args:    exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return output.print(cmd.OutOrStdout(), buildinfo.Read(), func() string { return versionLine() + "\n" })
		},
	}
	output = addOutputFlag(cmd, "text")
	return cmd
}

// versionLine is what pipit version and pipit --version print.
func versionLine() string { return "pipit " + buildinfo.Read().String() }
