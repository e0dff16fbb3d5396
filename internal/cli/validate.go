package cli

import (
	"errors"
	"fmt"
	"io/fs"

	"github.com/spf13/cobra"

	"github.com/pipit-dev/pipit/internal/spec"
)

func init() { register(newValidateCmd) }

func newValidateCmd(*globals) *cobra.Command {
	return &cobra.Command{
		Use:   "validate FILE...",
		Short: "Check rollout files without running them",
		Long: `Validate parses each rollout file strictly and checks it against the rules in
docs/spec.md, without starting anything or talking to a daemon.

For each file it prints "FILE: ok (N rollouts)", or every problem found, one per
line, as FILE:LINE:COLUMN: FIELD: REASON. Unknown fields (with the closest known
name), values of the wrong kind, durations and weights that do not parse, duplicate
keys, YAML anchors and aliases, and rules such as weights that go down are all
reported at once.

A file may hold several documents separated by ---; "-" reads standard input.
Documents of other APIs than pipit's (a Deployment, a Service) are skipped with a
note on standard error, so a manifest stream can be checked as it is.

It exits 0 when every file is valid and 2 when any is not.`,
		Example: `  pipit validate examples/canary.yaml
  pipit validate rollouts/*.yaml
  kustomize build overlays/prod | pipit validate -`,
		Args: func(cmd *cobra.Command, args []string) error {
			return BadInput(cobra.MinimumNArgs(1)(cmd, args))
		},
		RunE: func(cmd *cobra.Command, files []string) error {
			out := cmd.OutOrStdout()
			invalid := 0
			for _, res := range readRolloutFiles(files, cmd.InOrStdin(), cmd.ErrOrStderr()) {
				if res.src == nil {
					invalid++
					fmt.Fprintln(out, res.problem)
					continue
				}
				fmt.Fprintf(out, "%s: ok (%s)\n", res.src.Name, countNoun(len(res.src.Documents), "rollout"))
			}
			if invalid > 0 {
				return BadInputf("%d of %s invalid", invalid, countNoun(len(files), "file"))
			}
			return nil
		},
	}
}

// describeLoadError renders why a file was refused. Problems in the file
// name it on every line already; a file that cannot be read is named once.
func describeLoadError(file string, err error) string {
	var errs spec.Errors
	if errors.As(err, &errs) {
		return errs.Error()
	}
	var pathErr *fs.PathError
	if errors.As(err, &pathErr) {
		err = pathErr.Err
	}
	return fmt.Sprintf("%s: %v", file, err)
}

func countNoun(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
