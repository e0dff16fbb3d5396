package cli

import (
	"errors"
	"time"

	"github.com/spf13/cobra"

	"github.com/pipit-dev/pipit/internal/demo"
)

func init() { register(newDemoCmd) }

func newDemoCmd(g *globals) *cobra.Command {
	opt := demo.Options{}
	cmd := &cobra.Command{
		Use:   "demo [--faulty]",
		Short: "Show a whole canary rollout in one command, with nothing else installed",
		Long: `demo starts a stable (v1) and a canary (v2) sample app, the pipit daemon with a rollout
that goes 5% → 25% → 50% → promoted with short stages, and steady traffic through pipit's
proxy, then prints the rollout's timeline as it happens.

With --faulty the canary answers 20% of requests with errors and slowly; pipit rolls it back
on its own and prints the metric that decided it. The command exits 0 when the rollout ended
as the scenario expects (promoted, or rolled back with --faulty).`,
		Example: `  pipit demo
  pipit demo --faulty`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			opt.Out, opt.Clock, opt.Log = cmd.OutOrStdout(), g.clock, g.log
			o, err := demo.Run(cmd.Context(), opt)
			if err != nil {
				return err
			}
			if !o.Expected {
				return errors.New("the rollout did not end as the scenario expects")
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&opt.Faulty, "faulty", false, "give the canary errors and latency; expect a rollback")
	cmd.Flags().DurationVar(&opt.Stage, "stage", 6*time.Second, "soak time of each stage")
	cmd.Flags().IntVar(&opt.Rate, "rate", 200, "requests per second sent through the proxy")
	cmd.Flags().StringVar(&opt.StateDir, "state-dir", "", "keep the demo's state here (default: a temporary directory)")
	return cmd
}
