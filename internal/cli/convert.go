package cli

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/pipit-dev/pipit/internal/convert"
	"github.com/pipit-dev/pipit/internal/spec"
)

func init() { register(newConvertCmd) }

func newConvertCmd(*globals) *cobra.Command {
	opts := convert.Options{}
	cmd := &cobra.Command{
		Use:   "convert FILE... [-]",
		Short: "Turn Flagger Canaries and Argo Rollouts into pipit rollouts",
		Long: `Convert reads Flagger Canaries (flagger.app/v1beta1) with their MetricTemplates,
and Argo Rollouts (argoproj.io/v1alpha1) with their AnalysisTemplates and
ClusterAnalysisTemplates, from files or standard input ("-"), and writes pipit
Rollouts to standard output. An Argo Rollout that embeds its pod template gets a
Deployment beside it, holding the template, for the pipit Rollout to target.

Templates may come in files of their own: they are looked up across all the
input. The templates the rollouts use are written as pipit metric templates
(RolloutMetricTemplate, ClusterRolloutMetricTemplate) before the first rollout
that uses them, and the rollouts' metrics name them by templateRef with args. Every field that is not carried over, or is changed on the way, is named
on standard error as FILE:LINE: KIND NAME: FIELD: why. Documents of other kinds
(Services, VirtualServices) are skipped with a note. docs/kubernetes.md has the
field-by-field tables.

Flagger's built-in metrics become Prometheus queries of pipit's copies at
--prometheus-url: Istio's standard metrics with the Istio router, and otherwise
the pods' own http_request_duration_seconds histogram.

It exits 0 when every Canary and Rollout was converted into a valid rollout, and
2 when the input holds none, cannot be read, or one could not be converted.`,
		Example: `  pipit convert canary.yaml > rollout.yaml
  pipit convert analysis-templates.yaml rollout.yaml
  kustomize build overlays/prod | pipit convert - | pipit validate -`,
		Args: func(cmd *cobra.Command, args []string) error {
			return BadInput(cobra.MinimumNArgs(1)(cmd, args))
		},
		RunE: func(cmd *cobra.Command, files []string) error {
			var sources []*spec.Source
			for _, f := range files {
				src, err := spec.ReadManifests(f, cmd.InOrStdin())
				if err != nil {
					return BadInputf("%s", describeLoadError(f, err))
				}
				sources = append(sources, src)
			}
			res, err := convert.Convert(sources, opts)
			errOut := cmd.ErrOrStderr()
			for _, s := range res.Skipped {
				fmt.Fprintf(errOut, "note: skipping %s\n", s)
			}
			for _, n := range res.Notes {
				fmt.Fprintln(errOut, n)
			}
			if errors.Is(err, convert.ErrNothingToConvert) {
				return BadInput(err)
			}
			if err := convert.Write(cmd.OutOrStdout(), res.Objects); err != nil {
				return err
			}
			if len(res.Failed) > 0 {
				return BadInputf("not converted: %s", strings.Join(res.Failed, "; "))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&opts.PrometheusURL, "prometheus-url", convert.DefaultPrometheusURL,
		"Prometheus address of the queries written for Flagger's built-in metrics and its templates that name none")
	return cmd
}
