package cli

import (
	"fmt"
	"net"

	"github.com/spf13/cobra"

	"github.com/pipit-dev/pipit/internal/sampleapp"
)

func init() { register(newSampleAppCmd) }

func newSampleAppCmd(g *globals) *cobra.Command {
	var (
		listen string
		cfg    sampleapp.Config
	)
	cmd := &cobra.Command{
		Use:   "sample-app",
		Short: "Run a small HTTP service to roll out, with optional faults",
		Long: `sample-app runs the small HTTP service that tutorials, tests and the demo roll out.
Start one copy per version; give the canary faults to watch pipit roll it back.

Routes:
  /          JSON {"version": ..., "hostname": ..., "next": ...}, with the configured faults
  /health    200 "ok", never faulty, so it reports liveness only
  /version   the version as plain text
  /checkout  POST: the goal; --conversion-rate of the answers of / lead there ("next")

Faults apply to "/" only: each answer waits --latency ± a uniform --latency-jitter
(never less than zero), and --error-rate of the answers are HTTP 500.

Once listening it prints one line, "sample-app VERSION listening on ADDR", and
serves until interrupted (SIGINT or SIGTERM), letting requests in flight finish.`,
		Example: `  # the stable version
  pipit sample-app --listen 127.0.0.1:9001 --version v1

  # a canary that fails 20% of its requests and answers in about 150ms
  pipit sample-app --listen 127.0.0.1:9002 --version v2 --error-rate 0.2 --latency 150ms --latency-jitter 50ms

  # a new version that leads 30% of its visitors to the goal, for an experiment
  pipit sample-app --listen 127.0.0.1:9002 --version v2 --conversion-rate 0.3`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if _, _, err := net.SplitHostPort(listen); err != nil {
				return BadInputf("--listen %q: want HOST:PORT: %v", listen, err)
			}
			if err := cfg.Validate(); err != nil {
				return BadInput(err)
			}
			out := cmd.OutOrStdout()
			cfg.Clock, cfg.Log = g.clock, g.log
			return sampleapp.Serve(cmd.Context(), listen, cfg, func(addr string) {
				fmt.Fprintf(out, "sample-app %s listening on %s\n", cfg.Version, addr)
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&listen, "listen", "127.0.0.1:9000", "address to listen on, HOST:PORT (port 0 picks a free one)")
	f.StringVar(&cfg.Version, "version", "v1", "version to report")
	f.Float64Var(&cfg.ErrorRate, "error-rate", 0, "share of requests to / answered with HTTP 500, from 0 to 1")
	f.DurationVar(&cfg.Latency, "latency", 0, "mean delay before answering /")
	f.DurationVar(&cfg.LatencyJitter, "latency-jitter", 0, "spread the delay uniformly over latency ± this")
	f.Float64Var(&cfg.ConversionRate, "conversion-rate", 0, "share of answers of / that lead the visitor to the goal POST /checkout, from 0 to 1")
	return cmd
}
