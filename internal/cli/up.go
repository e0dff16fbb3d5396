package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/pipit-dev/pipit/internal/controlapi"
	"github.com/pipit-dev/pipit/internal/runtime/standalone"
	"github.com/pipit-dev/pipit/internal/spec"
)

func init() { register(newUpCmd) }

// upLong is pipit up's help.
const upLong = `up runs pipit on this machine with no Kubernetes and no service mesh. For each rollout in
the files it serves a proxy on the rollout's service.listen address that splits traffic
between the stable and the canary upstream, checks both, runs the analysis and moves the
rollout on. State is kept in an SQLite database in the state directory and written before
it is acted on: after a crash, 'pipit up' again resumes every rollout where it was.

kill -HUP (or 'pipit reload') makes it read the files again: rollouts added, removed
or changed, listeners opened or closed, requests in flight unaffected. Files that do
not validate change nothing; the reason is logged (and 'pipit reload' prints it).
docs/operations.md says what each change does to a rollout in flight.

The control API listens on --api (localhost only by default) and needs the token stored
in the state directory; the other pipit commands find both there. The web dashboard
shares its listener, under /ui/, and logs in with a token (docs/dashboard.md).

--ofrep ADDR serves the flag rollouts (spec.flag) over OpenFeature's remote evaluation
protocol: POST /ofrep/v1/evaluate/flags/KEY and /ofrep/v1/evaluate/flags, and POST
/v1/flags/KEY/events for the outcomes applications report. It needs a read-only token of
its own, kept in the state directory as ofrep-token (docs/flags.md).

The history (events, analysis samples, commands carried out) is pruned as the daemon
starts and then every hour: what is older than --retention goes, and each rollout keeps
at most --retention-keep of the most recent events, of samples and of done commands.
0 turns either bound off. Rollouts, their status and pending commands are never pruned.

Every rollout event is logged to stderr at INFO, warnings at WARN: --log-level warn
keeps only those, --log-format json writes one JSON object a line for a log
collector. Logs never hold the API token, cookie keys or webhook secrets.`

func newUpCmd(g *globals) *cobra.Command {
	var files []string
	var stateDir, api, ofrepAddr string
	var apiTLS tlsFlags
	var insecure bool
	retention := standalone.Retention{MaxAge: standalone.DefaultRetentionAge, KeepPerRollout: standalone.DefaultRetentionKeep}
	cmd := &cobra.Command{
		Use:   "up -f ROLLOUT.yaml [-f MORE.yaml] [--state-dir DIR] [--api ADDR] [--ofrep ADDR] [--retention AGE] [--retention-keep N]",
		Short: "Run the standalone daemon: rollout engine, traffic-splitting proxy and control API",
		Long:  upLong,
		Example: `  pipit up -f examples/canary.yaml
  pipit up -f web.yaml -f api.yaml --state-dir /var/lib/pipit --api 127.0.0.1:7433
  pipit up -f web.yaml --retention 90d --retention-keep 0
  pipit up -f new-checkout.yaml --ofrep 127.0.0.1:8016`,
		Args: exactArgs(0),
		// Every rollout event is logged at INFO (warnings at WARN): what
		// the daemon does is what people watching it want to read.
		Annotations: map[string]string{defaultLogLevel: "info"},
		RunE: func(cmd *cobra.Command, _ []string) error {
			if retention.KeepPerRollout < 0 {
				return BadInputf("--retention-keep %d: want 0 (no bound on the number) or more", retention.KeepPerRollout)
			}
			if len(files) == 0 {
				return BadInputf("no rollout file given: use -f FILE")
			}
			read := func() ([]standalone.Source, error) { return readSources(files) }
			sources, err := read()
			if err != nil {
				return BadInput(err)
			}
			// SIGHUP's default is to exit: it is caught before the daemon
			// says it is up, and a reload asked for meanwhile waits.
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			defer signal.Stop(hup)
			activated, err := standalone.SystemdSockets()
			if err != nil {
				return err
			}
			dir := controlapi.StateDir(stateDir)
			cfg := standalone.Config{Sources: sources, Read: read, StateDir: dir, APIAddr: api, APITLS: apiTLS.files(), Insecure: insecure, OFREPAddr: ofrepAddr,
				Retention: retention, Clock: g.clock, Logger: g.log, Inherit: &standalone.Inheritance{Sockets: activated}}
			d, err := standalone.Start(cmd.Context(), cfg)
			var cfgErr *standalone.ConfigError
			if errors.As(err, &cfgErr) {
				return BadInput(err)
			}
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			printUp(cmd.Context(), out, d, cfg)
			return serveUntilDone(cmd.Context(), d, cfg, hup, out, g.log)
		},
	}
	cmd.Flags().StringArrayVarP(&files, "file", "f", nil, "rollout file (repeatable)")
	cmd.Flags().StringVar(&stateDir, "state-dir", "", "state directory (default $PIPIT_STATE_DIR, else ~/.local/state/pipit)")
	cmd.Flags().StringVar(&api, "api", standalone.DefaultAPIAddr, "control API listen address")
	cmd.Flags().StringVar(&apiTLS.CertFile, "tls-cert", "", "serve the control API over TLS with this certificate (PEM); needs --tls-key")
	cmd.Flags().StringVar(&apiTLS.KeyFile, "tls-key", "", "the key of --tls-cert (PEM)")
	cmd.Flags().BoolVar(&insecure, "insecure", false, "serve the control API over plain HTTP on an address other than loopback, tokens in clear text")
	cmd.Flags().StringVar(&ofrepAddr, "ofrep", "", "serve the flag rollouts over OFREP on this address, such as 127.0.0.1:8016 (default: none)")
	cmd.Flags().Var((*ageValue)(&retention.MaxAge), "retention",
		"how long history (events, samples, done commands) is kept: 30d, 36h, 90m… (0: whatever its age)")
	cmd.Flags().IntVar(&retention.KeepPerRollout, "retention-keep", standalone.DefaultRetentionKeep,
		"how many of the most recent events, samples and done commands each rollout keeps, each counted apart (0: whatever their number)")
	return cmd
}

// printUp says where the daemon d of cfg serves: its control API and
// dashboard, its OFREP listener, and each rollout.
func printUp(ctx context.Context, out io.Writer, d *standalone.Daemon, cfg standalone.Config) {
	fmt.Fprintf(out, "pipit is up: control API on %s, state in %s\n", d.APIAddr(), cfg.StateDir)
	if addr, ok := d.OFREPAddr(); ok {
		fmt.Fprintf(out, "  flags over OFREP on %s\n", addr)
	}
	scheme := "http"
	if cfg.APITLS != nil {
		scheme = "https"
	}
	fmt.Fprintf(out, "  dashboard: %s://%s/ui/ (log in with a token, see pipit token create)\n", scheme, d.APIAddr())
	views, _ := d.Rollouts(ctx)
	for _, v := range views {
		what := "proxy"
		if v.Flag != "" {
			what = "flag " + v.Flag + " over OFREP"
		}
		fmt.Fprintf(out, "  rollout %s: %s on %s, %s, stable %s\n", v.Name, what, v.Listen, v.Status.Phase, v.Status.Stable.Version)
	}
}

// tlsFlags are --tls-cert and --tls-key.
type tlsFlags standalone.TLSFiles

// files is the TLS of the flags, nil when neither is given.
func (f tlsFlags) files() *standalone.TLSFiles {
	if f.CertFile == "" && f.KeyFile == "" {
		return nil
	}
	return &standalone.TLSFiles{CertFile: f.CertFile, KeyFile: f.KeyFile}
}

// readSources reads the rollout files, checking each one's size first.
func readSources(files []string) ([]standalone.Source, error) {
	var sources []standalone.Source
	for _, f := range files {
		data, err := readRolloutFile(f)
		if err != nil {
			return nil, err
		}
		sources = append(sources, standalone.Source{File: f, Data: data})
	}
	return sources, nil
}

// reloadWait bounds a reload asked for by SIGHUP.
const reloadWait = 2 * time.Minute

// drainTimeout bounds how long the proxies of a stopping daemon, or of
// one that handed over, finish the requests in flight.
const drainTimeout = 15 * time.Second

// serveUntilDone serves until ctx ends (SIGINT, SIGTERM) or another
// daemon took over, reloading d's files on every SIGHUP meanwhile. When a
// hand-over fails half-way, the daemon takes over from itself: it starts
// again in this process from its own sockets and processes, which never
// stopped serving.
func serveUntilDone(ctx context.Context, d *standalone.Daemon, cfg standalone.Config, hup <-chan os.Signal, out io.Writer, log *slog.Logger) error {
	for {
		select {
		case <-ctx.Done():
			fmt.Fprintln(out, "shutting down")
			return stopWithin(drainTimeout, d.Stop)
		case ho := <-d.HandOvers():
			if ho.Err == nil {
				fmt.Fprintf(out, "handed over to pid %d; finishing the requests in flight\n", ho.To)
				return stopWithin(drainTimeout, d.Drain)
			}
			log.Error("the hand-over failed; taking over again", "to", ho.To, "err", ho.Err)
			cfg.Inherit = ho.Inheritance
			next, err := standalone.Start(ctx, cfg)
			if derr := stopWithin(drainTimeout, d.Drain); derr != nil {
				log.Warn("draining after the failed hand-over", "err", derr)
			}
			if err != nil {
				return err
			}
			d = next
			continue
		case <-hup:
		}
		reload(ctx, d, out, log)
	}
}

// stopWithin runs stop with a context that ends after limit.
func stopWithin(limit time.Duration, stop func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	return stop(ctx)
}

// reload reloads d's files, saying what it did or why it was refused.
func reload(ctx context.Context, d *standalone.Daemon, out io.Writer, log *slog.Logger) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), reloadWait)
	defer cancel()
	res, err := d.Reload(rctx)
	if err != nil {
		log.Error("reload refused; nothing was changed", "err", err)
		fmt.Fprintf(out, "reload refused; nothing was changed:\n%v\n", err)
		return
	}
	log.Info("reloaded", "added", res.Added, "removed", res.Removed, "changed", len(res.Changed))
	printReload(out, res)
}

// ageValue is a flag holding a non-negative duration, written as Go writes
// durations (36h, 90m) or in whole days (30d), as retention periods are.
type ageValue time.Duration

func (a *ageValue) String() string {
	d := time.Duration(*a)
	if d != 0 && d%(24*time.Hour) == 0 {
		return strconv.FormatInt(int64(d/(24*time.Hour)), 10) + "d"
	}
	return d.String()
}

func (a *ageValue) Set(s string) error {
	var d time.Duration
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseUint(days, 10, 16)
		if err != nil {
			return fmt.Errorf("%q: want whole days such as 30d, or a duration such as 36h", s)
		}
		d = time.Duration(n) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return fmt.Errorf("%q: want a duration such as 36h, or whole days such as 30d", s)
		}
	}
	if d < 0 {
		return fmt.Errorf("%q is negative: want 0 (keep whatever the age) or more", s)
	}
	*a = ageValue(d)
	return nil
}

func (a *ageValue) Type() string { return "age" }

// readRolloutFile checks the size before reading, so a huge file is never
// read at all.
func readRolloutFile(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if fi.Size() > spec.MaxFileSize {
		return nil, fmt.Errorf("%s: %d bytes is more than the 1 MiB a rollout file may have", path, fi.Size())
	}
	return os.ReadFile(path)
}
