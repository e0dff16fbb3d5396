package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/pipit-dev/pipit/internal/lint"
)

func init() { register(newLintCmd) }

// lintOptions are the flags of pipit lint.
type lintOptions struct {
	output  *outputFormat
	failOn  string
	maxStep float64
}

func newLintCmd(*globals) *cobra.Command {
	o := &lintOptions{}
	cmd := &cobra.Command{
		Use:   "lint FILE... [-]",
		Short: "Find release anti-patterns in rollout files",
		Long: `Lint reads rollout files as validate does (several documents per file, "-" for
standard input, documents of other APIs skipped with a note) and looks for what a
valid file can still get wrong: a canary nothing watches, processes or Deployments
without readiness probes, a first step above 25% or a weight jump above --max-step,
stages too short to notice a worse error rate, waits for a person without timeout,
migrations without a contract step, mirrored writes, sticky sessions without a
user key, and rollbacks nobody is told of. docs/lint.md explains every rule.

Each finding is printed as FILE:LINE:COLUMN: SEVERITY: RULE: FIELD: what goes
wrong in production, and on the next line how to fix it.

It exits 0 when no finding is at or above --fail-on, 1 when one is, and 2 when a
file cannot be read or is invalid.`,
		Example: `  pipit lint examples/*.yaml
  pipit lint --fail-on info -o json rollout.yaml
  kustomize build overlays/prod | pipit lint -`,
		Args: func(cmd *cobra.Command, args []string) error {
			return BadInput(cobra.MinimumNArgs(1)(cmd, args))
		},
		RunE: func(cmd *cobra.Command, files []string) error {
			return o.run(cmd, files)
		},
	}
	f := cmd.Flags()
	o.output = addOutputFlag(cmd, "text")
	f.StringVar(&o.failOn, "fail-on", "warning", "exit 1 when a finding is at least this severe: error, warning or info")
	f.Float64Var(&o.maxStep, "max-step", lint.DefaultMaxStep, "largest weight increase, in percent, between hand-written steps")
	return cmd
}

// lintReport is the JSON and YAML form of pipit lint's output.
type lintReport struct {
	Rollouts int            `json:"rollouts"`
	Findings []lint.Finding `json:"findings"`
}

func (o *lintOptions) run(cmd *cobra.Command, files []string) error {
	failOn, err := lint.ParseSeverity(o.failOn)
	switch {
	case err != nil:
		return BadInputf("--fail-on: %v", err)
	case !(o.maxStep > 0 && o.maxStep <= 100):
		return BadInputf("--max-step %v: want a percentage above 0 and at most 100", o.maxStep)
	}
	report := lintReport{Findings: []lint.Finding{}}
	invalid := 0
	for _, res := range readRolloutFiles(files, cmd.InOrStdin(), cmd.ErrOrStderr()) {
		if res.src == nil {
			invalid++
			fmt.Fprintln(cmd.ErrOrStderr(), res.problem)
			continue
		}
		findings, err := lint.Lint(res.src, lint.Options{MaxStep: o.maxStep})
		if err != nil {
			return err
		}
		report.Rollouts += len(res.src.Documents)
		report.Findings = append(report.Findings, findings...)
	}
	if err := o.output.print(cmd.OutOrStdout(), report, report.text); err != nil {
		return err
	}
	if invalid > 0 {
		return BadInputf("%d of %s invalid", invalid, countNoun(len(files), "file"))
	}
	failing := 0
	for _, f := range report.Findings {
		if f.Severity >= failOn {
			failing++
		}
	}
	if failing > 0 {
		return fmt.Errorf("%s at or above %s", countNoun(failing, "finding"), failOn)
	}
	return nil
}

// text is the report for people: each finding, then the tally.
func (r lintReport) text() string {
	var b strings.Builder
	counts := map[lint.Severity]int{}
	for _, f := range r.Findings {
		counts[f.Severity]++
		fmt.Fprintln(&b, f)
	}
	if len(r.Findings) == 0 {
		fmt.Fprintf(&b, "no findings in %s\n", countNoun(r.Rollouts, "rollout"))
		return b.String()
	}
	fmt.Fprintf(&b, "%s in %s: %d error, %d warning, %d info\n", countNoun(len(r.Findings), "finding"),
		countNoun(r.Rollouts, "rollout"), counts[lint.Error], counts[lint.Warning], counts[lint.Info])
	return b.String()
}
