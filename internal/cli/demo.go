package cli

import (
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/pipit-dev/pipit/internal/demo"
)

func init() { register(newDemoCmd) }

func newDemoCmd(g *globals) *cobra.Command {
	opt := demo.Options{}
	cmd := &cobra.Command{
		Use:   "demo [--strategy canary|blue-green|experiment] [--faulty]",
		Short: "Show a whole rollout in one command, with nothing else installed",
		Long: `demo starts a stable (v1) and a canary (v2) sample app, the pipit daemon with a rollout
that goes 5% → 25% → 50% → promoted with short stages, and steady traffic through pipit's
proxy, then prints the rollout's timeline as it happens.

With --strategy blue-green the rollout is a blue-green release instead: v2 starts beside v1
with no user traffic, is checked three times on its preview address (which the demo sends
checks to), then takes all the traffic in one switch.

With --strategy experiment the rollout is an A/B test: simulated users, each with a key of
their own (X-User-ID), are split 50/50 between v1 and v2 and buy (POST /checkout) when the
page leads them to, which v2's page does more often (25% against 10%); pipit names the
winner with both conversion rates, the difference, its interval and the p-value, and
promotes v2 because it wins. With --faulty, v2 converts worse (3%) and loses.

With --faulty the canary answers 20% of requests with errors and slowly; pipit rolls it back
on its own and prints the metric that decided it. The command exits 0 when the rollout ended
as the scenario expects (promoted, or rolled back with --faulty).`,
		Example: `  pipit demo
  pipit demo --faulty
  pipit demo --strategy blue-green
  pipit demo --strategy blue-green --faulty
  pipit demo --strategy experiment`,
		Args: exactArgs(0),
		// The demo prints the rollout's timeline itself: the daemon's
		// log of the same events would print each twice.
		Annotations: map[string]string{defaultLogLevel: "error"},
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !slices.Contains(demo.Strategies, opt.Strategy) {
				return BadInputf("--strategy: unknown strategy %q; the demo shows %s", opt.Strategy, strings.Join(demo.Strategies, ", "))
			}
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
	cmd.Flags().BoolVar(&opt.Faulty, "faulty", false, "give the canary errors and latency (an experiment's: a lower conversion rate); expect a rollback")
	cmd.Flags().StringVar(&opt.Strategy, "strategy", demo.StrategyCanary, "the release strategy shown: "+strings.Join(demo.Strategies, " or "))
	_ = cmd.RegisterFlagCompletionFunc("strategy", cobra.FixedCompletions(demo.Strategies, cobra.ShellCompDirectiveNoFileComp))
	cmd.Flags().DurationVar(&opt.Stage, "stage", 6*time.Second, "soak time of each stage")
	cmd.Flags().IntVar(&opt.Rate, "rate", 200, "requests per second sent through the proxy")
	cmd.Flags().StringVar(&opt.StateDir, "state-dir", "", "keep the demo's state here (default: a temporary directory)")
	return cmd
}
