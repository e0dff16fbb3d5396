package cli

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/rollout"
	"github.com/pipit-dev/pipit/internal/spec"
)

func init() { register(newDeployCmd) }

// waitInterval is the time between two looks at the rollout with --wait.
const waitInterval = time.Second

// processFlags describe a canary on the command line: the URLs it is
// reached at, or the processes that run it.
type processFlags struct {
	command, workdir, from string
	args, env              []string
	replicas               int32
	// canaries are the --canary URLs: one, or the machines of a fleet.
	canaries []string
}

// deployExample is the help's examples of pipit deploy.
const deployExample = `  pipit deploy web --canary http://127.0.0.1:9002 --version v2
  pipit deploy web --canary http://10.0.0.7:8080 --version "$GIT_SHA" --reason "release 1.4"
  pipit deploy web --canary http://10.0.0.7:8080 --canary http://10.0.0.8:8080 --version v2
  pipit deploy web --version v2 --command ./server --arg --port={{ .Port }} --env MODE=canary --replicas 2
  pipit deploy web --version v2 --from v2.yaml
  pipit deploy new-checkout --version on
  pipit deploy web --canary http://10.0.0.7:8080 --version "$GIT_SHA" --wait --timeout 30m`

func newDeployCmd(g *globals) *cobra.Command {
	var (
		canary v1alpha1.VersionRef
		proc   processFlags
		flags  *commandFlags
		wait   struct {
			wait    bool
			timeout time.Duration
		}
	)
	cmd := &cobra.Command{
		Use:   "deploy NAME (--canary URL [--canary URL]... | --version V --command CMD [--arg A]... | --version V --from FILE | --version VARIANT)",
		Short: "Start rolling a new version out",
		Long: `deploy starts rolling out a new version: it waits for it to become healthy, then
gives it the share of traffic of each step in turn while the checks pass.

A rollout whose versions are URLs takes the version served at --canary; --version
labels it in status and history and defaults to the URL. A version served by a
fleet of machines takes --canary once per machine (at most 64): requests are
spread over them, and the health check takes a failing one out of rotation.

A rollout whose versions are processes pipit runs takes a process description and a
--version label (required): either --command with its --arg, --env, --workdir and
--replicas, or --from, a YAML file holding a process description as written under
service.canary.process in a rollout file (with readiness and liveness probes, a
stop grace period, a memory limit). In arguments and environment values,
{{ .Port }} is the port pipit gives each replica and {{ .Version }} the label.
Without a readiness probe a replica is ready once its port accepts connections.

A flag rollout (spec.flag) takes --version alone: the variant to roll out.

Deploying while another canary is in flight replaces that canary and starts the
analysis again from the first step; deploying the stable version then takes the
canary back at once, with no analysis (the rollout ends Aborted).

It exits 2 if the URL or the process description is not valid, and 1 if the
rollout cannot take this canary now (for example while it is promoting, or a
URL for a rollout of processes).

With --wait it then shows the rollout as 'pipit get --watch' does until it ends,
and exits with its outcome, for a CI job to gate on: 0 when the new version was
promoted, 1 when it was rolled back, aborted or failed, 124 when --timeout passed
first (as timeout(1); the rollout goes on) and 130 when interrupted.`,
		Example: deployExample,
		Args:    exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := proc.describe(cmd, &canary); err != nil {
				return BadInput(err)
			}
			if err := checkTimeout(cmd, wait.timeout, "wait"); err != nil {
				return err
			}
			v, b, err := flags.send(cmd, args[0], rollout.Command{Kind: rollout.CommandDeploy, Canary: &canary})
			if err != nil || !wait.wait {
				return err
			}
			out := cmd.OutOrStdout()
			w := &watcher{clock: g.clock, backend: b, name: args[0], interval: waitInterval, timeout: wait.timeout,
				out: out, notes: cmd.ErrOrStderr(), tty: isTerminal(out)}
			return w.watch(cmd.Context(), &v)
		},
	}
	flags = addCommandFlags(cmd, g)
	f := cmd.Flags()
	f.StringArrayVar(&proc.canaries, "canary", nil, "base URL of the new version, such as http://127.0.0.1:9002 (repeat it for each machine of a fleet)")
	f.StringVar(&canary.Version, "version", "", "label of the new version (default: the URL; required for processes)")
	f.StringVar(&proc.command, "command", "", "program to run as the new version (a rollout of processes)")
	f.StringArrayVar(&proc.args, "arg", nil, "argument of --command (repeatable, in order)")
	f.StringArrayVar(&proc.env, "env", nil, "KEY=VALUE added to the environment of --command (repeatable)")
	f.StringVar(&proc.workdir, "workdir", "", "directory --command starts in (default: the daemon's)")
	f.Int32Var(&proc.replicas, "replicas", 0, "how many processes of --command serve the version (default 1)")
	f.StringVar(&proc.from, "from", "", "YAML file describing the new version's processes")
	f.BoolVar(&wait.wait, "wait", false, "show the rollout until it ends and exit with its outcome: 0 promoted, 1 rolled back, aborted or failed")
	f.DurationVar(&wait.timeout, "timeout", 0, "with --wait, exit 124 if the rollout has not ended by then (default: no limit)")
	return cmd
}

// describe completes v from the flags: a URL, or a checked process
// description.
func (p *processFlags) describe(cmd *cobra.Command, v *v1alpha1.VersionRef) error {
	given := func(names ...string) int {
		n := 0
		for _, name := range names {
			if cmd.Flags().Changed(name) {
				n++
			}
		}
		return n
	}
	switch given("canary", "command", "from") {
	case 0:
		if v.Version != "" && given("arg", "env", "workdir", "replicas") == 0 {
			return nil // a flag's variant; the daemon checks it is one
		}
		return errors.New("--canary: a URL is required, or --command or --from for a rollout of processes, or --version alone for a flag's variant")
	case 1:
	default:
		return errors.New("give one of --canary, --command and --from")
	}
	if !cmd.Flags().Changed("command") && given("arg", "env", "workdir", "replicas") > 0 {
		return errors.New("--arg, --env, --workdir and --replicas go with --command")
	}
	if cmd.Flags().Changed("canary") {
		return p.describeURLs(v)
	}
	if v.Version == "" {
		return errors.New("--version: a label is required for a process version, such as v2 or a commit")
	}
	s, err := p.spec()
	if err != nil {
		return err
	}
	if _, err := spec.ResolveProcess(s); err != nil {
		return fmt.Errorf("the process description:\n%w", err)
	}
	v.Process = &s
	return nil
}

// describeURLs completes v from --canary: one URL, or the machines of a
// fleet, each checked and none twice.
func (p *processFlags) describeURLs(v *v1alpha1.VersionRef) error {
	if len(p.canaries) > spec.MaxUpstreamURLs {
		return fmt.Errorf("--canary: %d URLs, more than the %d machines a version may have", len(p.canaries), spec.MaxUpstreamURLs)
	}
	for i, u := range p.canaries {
		if err := checkUpstreamURL(u); err != nil {
			return fmt.Errorf("--canary: %w", err)
		}
		if slices.Contains(p.canaries[:i], u) {
			return fmt.Errorf("--canary: %q is given twice", u)
		}
	}
	if len(p.canaries) == 1 {
		v.URL = p.canaries[0]
	} else {
		v.URLs = p.canaries
	}
	if v.Version == "" {
		v.Version = p.canaries[0]
	}
	return nil
}

// spec reads the process description from --from or builds it from
// --command and its flags.
func (p *processFlags) spec() (v1alpha1.ProcessSpec, error) {
	if p.from != "" {
		data, err := readRolloutFile(p.from)
		if err != nil {
			return v1alpha1.ProcessSpec{}, fmt.Errorf("--from: %w", err)
		}
		return spec.ParseProcessFile(p.from, data)
	}
	s := v1alpha1.ProcessSpec{Command: p.command, Args: p.args, WorkingDir: p.workdir, Replicas: p.replicas}
	for _, kv := range p.env {
		k, val, ok := strings.Cut(kv, "=")
		if !ok {
			return v1alpha1.ProcessSpec{}, fmt.Errorf("--env %q: want KEY=VALUE", kv)
		}
		if s.Env == nil {
			s.Env = map[string]string{}
		}
		s.Env[k] = val
	}
	return s, nil
}

// checkUpstreamURL accepts an absolute http or https URL with a host.
func checkUpstreamURL(s string) error {
	if s == "" {
		return fmt.Errorf("a URL is required")
	}
	u, err := url.Parse(s)
	if err != nil {
		return err
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q is not an absolute http or https URL", s)
	}
	return nil
}
