package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/spf13/cobra"

	"github.com/pipit-dev/pipit/internal/spec"
)

func init() { register(newValidateCmd) }

func newValidateCmd(*globals) *cobra.Command {
	var output *outputFormat
	cmd := &cobra.Command{
		Use:   "validate FILE...",
		Short: "Check rollout files without running them",
		Long: `Validate parses each rollout file strictly and checks it against the rules in
docs/spec.md, without starting anything or talking to a daemon.

For each file it prints "FILE: ok (N rollouts)", or every problem found, one per
line, as FILE:LINE:COLUMN: FIELD: REASON. Unknown fields (with the closest known
name), values of the wrong kind, durations and weights that do not parse, duplicate
keys, YAML anchors and aliases, and rules such as weights that go down are all
reported at once. -o json and -o yaml print the same as a document: each file with
its number of rollouts and its problems.

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
			report := validateReport{Files: []validatedFile{}}
			invalid := 0
			for i, res := range readRolloutFiles(files, cmd.InOrStdin(), cmd.ErrOrStderr()) {
				f := validatedFile{File: files[i], Problems: []string{}}
				if res.src == nil {
					invalid++
					f.Problems = strings.Split(res.problem, "\n")
				} else {
					f.File, f.Rollouts, f.Templates = res.src.Name, len(res.src.Documents), len(res.src.Templates)
				}
				report.Files = append(report.Files, f)
			}
			if err := output.print(cmd.OutOrStdout(), report, report.text); err != nil {
				return err
			}
			if invalid > 0 {
				return BadInputf("%d of %s invalid", invalid, countNoun(len(files), "file"))
			}
			return nil
		},
	}
	output = addOutputFlag(cmd, "text")
	return cmd
}

// validateReport is what pipit validate found, file by file.
type validateReport struct {
	Files []validatedFile `json:"files"`
}

// validatedFile is one file's verdict: the rollouts and metric templates
// it holds when valid, else every problem, one a line as people read them.
type validatedFile struct {
	File     string `json:"file"`
	Rollouts int    `json:"rollouts"`
	// Templates are the metric templates the file holds.
	Templates int      `json:"templates,omitempty"`
	Problems  []string `json:"problems"`
}

// text is the report for people: "FILE: ok (N rollouts)", or the problems.
func (r validateReport) text() string {
	var b strings.Builder
	for _, f := range r.Files {
		if len(f.Problems) > 0 {
			b.WriteString(strings.Join(f.Problems, "\n") + "\n")
			continue
		}
		held := countNoun(f.Rollouts, "rollout")
		if f.Templates > 0 {
			held += ", " + countNoun(f.Templates, "metric template")
		}
		fmt.Fprintf(&b, "%s: ok (%s)\n", f.File, held)
	}
	return b.String()
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
