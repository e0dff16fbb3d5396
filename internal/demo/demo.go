// Package demo runs a whole rollout on this machine with nothing else
// installed: two sample apps, the standalone daemon, steady traffic
// through its proxy, and the timeline printed as it happens. The rollout
// is a canary, a blue-green release with checks on its preview, or an
// experiment whose simulated users convert better on the new version.
package demo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"text/template"
	"time"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/controlapi"
	"github.com/pipit-dev/pipit/internal/loadgen"
	"github.com/pipit-dev/pipit/internal/rollout"
	"github.com/pipit-dev/pipit/internal/runtime/standalone"
	"github.com/pipit-dev/pipit/internal/sampleapp"
)

// Options configure a demo run.
type Options struct {
	// Faulty gives the canary errors and latency (in an experiment: a
	// lower conversion rate); the demo then expects a rollback instead of
	// a promotion.
	Faulty bool
	// Strategy is StrategyCanary (the default), StrategyBlueGreen or
	// StrategyExperiment.
	Strategy string
	// Stage is the soak time of each of the three stages.
	Stage time.Duration
	// Rate is the traffic sent through the proxy, in requests per second.
	Rate int
	// StateDir keeps the daemon's state; empty uses a temporary directory
	// removed at the end.
	StateDir string
	// Out receives the timeline.
	Out io.Writer
	// Clock is the demo's and its daemon's clock; nil is the wall clock.
	Clock rollout.Clock
	// Log receives the daemon's and the sample apps' logs; nil discards
	// them.
	Log *slog.Logger
}

// Outcome is how the demo's rollout ended.
type Outcome struct {
	Phase    v1alpha1.Phase
	Reason   string
	Metric   string
	Took     time.Duration
	Expected bool
}

// The strategies the demo shows.
const (
	StrategyCanary     = "canary"
	StrategyBlueGreen  = "blue-green"
	StrategyExperiment = "experiment"
)

// Strategies lists the strategies the demo shows.
var Strategies = []string{StrategyCanary, StrategyBlueGreen, StrategyExperiment}

// Conversion rates of the experiment's versions: the share of their
// visitors the sample apps lead to the goal.
const (
	stableConversion       = 0.10
	canaryConversion       = 0.25
	faultyCanaryConversion = 0.03
)

// rolloutTemplate is the demo's rollout: the write-up's plan (5% → 25% →
// 50% → promoted) with short stages and a check every two seconds; or,
// blue-green, three checks of the preview, then the switch; or an
// experiment, 50/50 by the users' key, on the goal of the sample app,
// whose latency guardrail is loose: what is shown is the goal's verdict,
// and a busy machine's latency is not the treatment's fault.
var rolloutTemplate = template.Must(template.New("rollout").Parse(`apiVersion: pipit.dev/v1alpha1
kind: Rollout
metadata:
  name: demo
spec:
  service:
    listen: 127.0.0.1:0
    stable: {url: "http://{{.Stable}}", version: v1}
    healthCheck: {path: /health, interval: 250ms}
{{- if .Experiment}}
    traffic:
      userKey: [{header: X-User-ID}]
{{- end}}
  strategy:
{{- if .Experiment}}
    experiment:
      split: 50
      goal: checkout
      promoteIf: better
      minSample: 200
      maxDuration: 80s
{{- else if .BlueGreen}}
    blueGreen:
      previewListen: 127.0.0.1:0
      checks: 3
{{- else}}
    steps:
    - setWeight: 5
    - pause: {duration: {{.Stage}}}
    - setWeight: 25
    - pause: {duration: {{.Stage}}}
    - setWeight: 50
    - pause: {duration: {{.Stage}}}
{{- end}}
  analysis:
    interval: {{.Interval}}
    failureLimit: 1
{{- if .Experiment}}
    goals:
    - {name: checkout, method: {exact: POST}, path: {exact: /checkout}}
{{- end}}
    metrics:
    - name: request-success-rate
      thresholdRange: {min: 99}
    - name: latency-p99
      thresholdRange: {max: {{if .Experiment}}1000{{else}}100{{end}}}
`))

// timeout bounds a whole demo run.
const timeout = 110 * time.Second

// followPoll is how often the demo looks for new events.
const followPoll = 100 * time.Millisecond

// Run plays the demo and reports how the rollout ended. It returns an error
// when the demo could not run; an unexpected ending is in Outcome.Expected.
func Run(ctx context.Context, opt Options) (Outcome, error) {
	if opt.Stage <= 0 {
		opt.Stage = 6 * time.Second
	}
	if opt.Rate <= 0 {
		opt.Rate = 200
	}
	if opt.Strategy == "" {
		opt.Strategy = StrategyCanary
	}
	if !slices.Contains(Strategies, opt.Strategy) {
		return Outcome{}, fmt.Errorf("--strategy: unknown strategy %q; the demo shows %s", opt.Strategy, strings.Join(Strategies, ", "))
	}
	clock := rollout.ClockOrSystem(opt.Clock)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()

	stableAddr, canaryAddr, err := startApps(ctx, &wg, opt, clock)
	if err != nil {
		return Outcome{}, err
	}
	var doc bytes.Buffer
	if err := rolloutTemplate.Execute(&doc, map[string]any{"Stable": stableAddr, "Stage": opt.Stage, "Interval": opt.Stage / 3,
		"BlueGreen": opt.Strategy == StrategyBlueGreen, "Experiment": opt.Strategy == StrategyExperiment}); err != nil {
		return Outcome{}, err
	}
	dir := opt.StateDir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "pipit-demo-"); err != nil {
			return Outcome{}, err
		}
		defer os.RemoveAll(dir)
	}
	d, err := standalone.Start(ctx, standalone.Config{
		Sources: []standalone.Source{{File: "demo.yaml", Data: doc.Bytes()}}, StateDir: dir, APIAddr: "127.0.0.1:0",
		Clock: clock, Logger: opt.Log,
	})
	if err != nil {
		return Outcome{}, err
	}
	defer d.Stop(context.WithoutCancel(ctx))
	proxyAddr, _ := d.ProxyAddr("demo")

	out := opt.Out
	fmt.Fprintf(out, "pipit demo: stable v1 on %s, canary v2 on %s%s", stableAddr, canaryAddr, faultText(opt))
	traffic := sendTraffic(ctx, &wg, out, opt, proxyAddr)
	if preview, ok := d.PreviewAddr("demo"); ok {
		// The checks of the new version before the switch are the
		// preview's requests: a smoke test, as a team would run.
		fmt.Fprintf(out, "; its preview on %s receives %d requests/s of checks", preview, opt.Rate/4)
		sendLoad(ctx, &wg, preview, opt.Rate/4)
	}
	fmt.Fprintf(out, "; the rollout:\n\n%s\n", indent(doc.String()))

	start := clock.Now()
	if _, err := d.Submit(ctx, "demo", rollout.Command{Kind: rollout.CommandDeploy, Actor: "demo",
		Canary: &v1alpha1.VersionRef{Version: "v2", URL: "http://" + canaryAddr}}); err != nil {
		return Outcome{}, fmt.Errorf("starting the rollout: %w", err)
	}
	view, err := follow(ctx, clock, d, out, start)
	if err != nil {
		return Outcome{}, err
	}
	cancel()
	return report(out, view, <-traffic, opt.Faulty, clock.Now().Sub(start)), nil
}

// faultText says how the canary is faulty, if it is.
func faultText(opt Options) string {
	switch {
	case !opt.Faulty:
		return ""
	case opt.Strategy == StrategyExperiment:
		return fmt.Sprintf(" (faulty: it leads %g%% of its users to buy, v1 %g%%)", 100*faultyCanaryConversion, 100*stableConversion)
	}
	return " (faulty: 20% errors, ~180 ms latency)"
}

// startApps starts the sample apps of v1 and of v2, which with
// opt.Faulty answers with errors and slowly (in an experiment, it
// converts worse instead of better).
func startApps(ctx context.Context, wg *sync.WaitGroup, opt Options, clock rollout.Clock) (stableAddr, canaryAddr string, err error) {
	stableCfg := sampleapp.Config{Version: "v1", Latency: 5 * time.Millisecond, LatencyJitter: 3 * time.Millisecond}
	canaryCfg := sampleapp.Config{Version: "v2", Latency: 6 * time.Millisecond, LatencyJitter: 3 * time.Millisecond}
	switch {
	case opt.Strategy == StrategyExperiment:
		stableCfg.ConversionRate, canaryCfg.ConversionRate = stableConversion, canaryConversion
		if opt.Faulty {
			canaryCfg.ConversionRate = faultyCanaryConversion
		}
	case opt.Faulty:
		canaryCfg = sampleapp.Config{Version: "v2", ErrorRate: 0.2, Latency: 180 * time.Millisecond, LatencyJitter: 60 * time.Millisecond}
	}
	stableCfg.Clock, stableCfg.Log = clock, opt.Log
	canaryCfg.Clock, canaryCfg.Log = clock, opt.Log
	if stableAddr, err = startApp(ctx, wg, stableCfg); err != nil {
		return "", "", err
	}
	canaryAddr, err = startApp(ctx, wg, canaryCfg)
	return stableAddr, canaryAddr, err
}

// sendTraffic says what traffic the proxy at addr receives and sends it
// until ctx ends: requests at opt.Rate, or, in an experiment, half as
// many new users a second, each with a key of their own, who buy when
// the page leads them to. The channel then gets a line that sums it up.
func sendTraffic(ctx context.Context, wg *sync.WaitGroup, out io.Writer, opt Options, addr string) <-chan string {
	if opt.Strategy != StrategyExperiment {
		fmt.Fprintf(out, "\nproxy on %s receives %d requests/s", addr, opt.Rate)
		return summarize(sendLoad(ctx, wg, addr, opt.Rate), func(s loadgen.Summary) string {
			return fmt.Sprintf("traffic: %d requests through the proxy, status codes %s", s.Requests, codes(s.StatusCodes))
		})
	}
	fmt.Fprintf(out, "\nproxy on %s receives %d new users/s, keyed by X-User-ID, who buy (POST /checkout) when the page leads them to", addr, opt.Rate/2)
	users := make(chan loadgen.UsersSummary, 1)
	wg.Go(func() {
		s, _ := loadgen.RunUsers(ctx, loadgen.UsersConfig{URL: "http://" + addr + "/", Rate: opt.Rate / 2, Duration: timeout})
		users <- s
	})
	return summarize(users, func(s loadgen.UsersSummary) string {
		return fmt.Sprintf("users: v1 %d visitors, %d bought; v2 %d visitors, %d bought", s.Visitors["v1"], s.Converted["v1"], s.Visitors["v2"], s.Converted["v2"])
	})
}

// summarize turns the summary that in gets into the line of text it sums
// up.
func summarize[S any](in <-chan S, text func(S) string) <-chan string {
	out := make(chan string, 1)
	go func() { out <- text(<-in) }()
	return out
}

// sendLoad sends rate requests a second to addr until ctx ends; the
// channel then gets the summary.
func sendLoad(ctx context.Context, wg *sync.WaitGroup, addr string, rate int) <-chan loadgen.Summary {
	done := make(chan loadgen.Summary, 1)
	wg.Go(func() {
		s, _ := loadgen.Run(ctx, loadgen.Config{URL: "http://" + addr + "/", Rate: rate, Duration: timeout})
		done <- s
	})
	return done
}

func startApp(ctx context.Context, wg *sync.WaitGroup, cfg sampleapp.Config) (string, error) {
	ready := make(chan string, 1)
	errc := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		errc <- sampleapp.Serve(ctx, "127.0.0.1:0", cfg, func(addr string) { ready <- addr })
	}()
	select {
	case addr := <-ready:
		return addr, nil
	case err := <-errc:
		return "", fmt.Errorf("sample app %s: %w", cfg.Version, err)
	}
}

// follow prints each new event until the rollout ends, looking every
// followPoll on clock.
func follow(ctx context.Context, clock rollout.Clock, b controlapi.Backend, out io.Writer, start time.Time) (controlapi.RolloutView, error) {
	printed := 0
	for {
		events, err := b.Events(ctx, "demo", 0)
		if err != nil {
			return controlapi.RolloutView{}, err
		}
		for _, e := range events[printed:] {
			if e.Reason == "Installed" {
				continue
			}
			mark := " "
			if e.Type == v1alpha1.EventWarning {
				mark = "!"
			}
			fmt.Fprintf(out, "%s %6.1fs  %-16s %5s  %s\n", mark, e.Time.Sub(start).Seconds(), e.Phase, e.Weight, e.Message)
		}
		printed = len(events)
		view, err := b.Rollout(ctx, "demo")
		if err != nil {
			return controlapi.RolloutView{}, err
		}
		if view.Status.Phase.Terminal() {
			return view, nil
		}
		if rollout.Sleep(ctx, clock, followPoll) != nil {
			return controlapi.RolloutView{}, errors.New("the demo's rollout did not finish in time; phase " + string(view.Status.Phase))
		}
	}
}

// report prints how the rollout ended and why.
func report(out io.Writer, v controlapi.RolloutView, traffic string, faulty bool, took time.Duration) Outcome {
	st := v.Status
	o := Outcome{Phase: st.Phase, Took: took}
	want := v1alpha1.PhaseSucceeded
	if faulty {
		want = v1alpha1.PhaseRolledBack
	}
	o.Expected = st.Phase == want
	fmt.Fprintln(out)
	if st.Rollback != nil {
		o.Reason, o.Metric = st.Rollback.Reason, st.Rollback.Metric
	}
	if len(st.Analysis.LastResults) > 0 {
		fmt.Fprintf(out, "last check:\n  %-22s %10s %10s  %s\n", "METRIC", "CANARY", "STABLE", "VERDICT")
		for _, r := range st.Analysis.LastResults {
			fmt.Fprintf(out, "  %-22s %10s %10s  %s\n", r.Name, value(r.Canary), value(r.Stable), r.Verdict)
		}
	}
	if x := st.Experiment; x != nil {
		fmt.Fprintf(out, "experiment: %s\n", x.Summary())
	}
	fmt.Fprintln(out, traffic)
	switch {
	case st.Phase == v1alpha1.PhaseSucceeded:
		fmt.Fprintf(out, "\nSucceeded in %.1fs: %s is now the stable version.\n", took.Seconds(), st.Stable.Version)
	case st.Rollback != nil:
		fmt.Fprintf(out, "\n%s after %.1fs: %s\n", st.Phase, took.Seconds(), st.Rollback.Reason)
		if st.Rollback.Metric != "" {
			fmt.Fprintf(out, "failing metric: %s\n", st.Rollback.Metric)
		}
	}
	if !o.Expected {
		fmt.Fprintf(out, "expected %s, got %s\n", want, st.Phase)
	}
	return o
}

func value(v *float64) string {
	if v == nil {
		return "no data"
	}
	return fmt.Sprintf("%.2f", *v)
}

func codes(m map[string]int) string {
	var parts []string
	for _, c := range []string{"200", "500", "502", "503", "504", "0"} {
		if n := m[c]; n > 0 {
			parts = append(parts, fmt.Sprintf("%s×%d", c, n))
		}
	}
	return strings.Join(parts, " ")
}

func indent(s string) string {
	return "    " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n    ") + "\n"
}
