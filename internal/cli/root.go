// Package cli is pipit's command line: one file per verb, each a thin layer
// that parses flags, calls into the packages that do the work and prints.
package cli

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/pipit-dev/pipit/internal/rollout"
)

// Exit codes shared by every command.
const (
	ExitOK       = 0
	ExitFailed   = 1 // the operation was tried and failed
	ExitBadInput = 2 // the input was refused; nothing was changed
	// ExitTimeout: a wait for a rollout's end (get --watch, deploy
	// --wait) reached its --timeout, the code timeout(1) exits with.
	ExitTimeout = 124
	// ExitInterrupted: such a wait was interrupted (SIGINT, SIGTERM)
	// before the rollout ended, the code a shell gives a job killed by
	// SIGINT; an interrupted wait is never read as a success.
	ExitInterrupted = 130
)

// badInput marks an error as the caller's fault, so it exits 2.
type badInput struct{ err error }

func (e badInput) Error() string { return e.err.Error() }
func (e badInput) Unwrap() error { return e.err }

// BadInput wraps err so that the command exits with ExitBadInput.
func BadInput(err error) error {
	if err == nil {
		return nil
	}
	return badInput{err}
}

// BadInputf formats a bad-input error.
func BadInputf(format string, args ...any) error { return badInput{fmt.Errorf(format, args...)} }

// globals holds the flags every command shares, and what the root sets up
// from them for every command.
type globals struct {
	verbose bool
	// logFormat and logLevel are --log-format and --log-level; empty
	// when not given, for the command's default.
	logFormat, logLevel string
	// clock is the time every command reads and waits on.
	clock rollout.Clock
	// log is the logger commands hand to what they run; the root sets it
	// up from --verbose before any command runs.
	log *slog.Logger
}

// Execute runs the command line and returns the process exit code.
func Execute(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := NewRoot(stdout, stderr)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	fmt.Fprintln(stderr, "Error:", err)
	var bad badInput
	var code exitCode
	if errors.As(err, &code) {
		return code.code
	}
	if errors.As(err, &bad) || strings.HasPrefix(err.Error(), "unknown command") {
		return ExitBadInput
	}
	return ExitFailed
}

// NewRoot builds the command tree.
func NewRoot(stdout, stderr io.Writer) *cobra.Command {
	g := &globals{clock: rollout.SystemClock{}, log: slog.New(slog.DiscardHandler)}
	root := &cobra.Command{
		Use:   "pipit",
		Short: "Progressive delivery: canary rollouts that widen while healthy and roll back when not",
		Long: `pipit rolls a new version of a service out to a small share of its users, compares
it with the current version, widens the share step by step while it stays healthy,
and rolls back on its own the moment it does not.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		// Flags before the verb are parsed by the root: see preVerbFlags.
		TraverseChildren: true,
		// With TraverseChildren an unknown verb reaches the root as an
		// argument instead of failing the lookup of a subcommand.
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return cmd.Help()
			}
			msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
			if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
				msg += "; did you mean " + strings.Join(s, " or ") + "?"
			}
			return BadInputf("%s", msg)
		},
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			log, err := g.logger(cmd)
			if err != nil {
				return err
			}
			g.log = log
			// Libraries that log only through the process-wide logger
			// (client-go's, say) write where pipit's own logs go.
			slog.SetDefault(g.log)
			return handOverPreVerbFlags(cmd.Root(), cmd)
		},
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.Version = versionLine()
	root.SetVersionTemplate("{{.Version}}\n")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return BadInput(err) })
	root.PersistentFlags().BoolVarP(&g.verbose, "verbose", "v", false, "log debug details to stderr")
	root.PersistentFlags().StringVar(&g.logFormat, "log-format", "",
		"how logs on stderr are written: text or json (default text; json for pipit controller)")
	root.PersistentFlags().StringVar(&g.logLevel, "log-level", "",
		"least severe logs written: debug, info, warn or error; wins over -v (default warn; info for pipit up and pipit controller)")
	for _, f := range preVerbFlags {
		if f.isBool {
			root.Flags().BoolP(f.name, f.short, false, "")
		} else {
			root.Flags().StringP(f.name, f.short, "", "")
		}
		_ = root.Flags().MarkHidden(f.name)
	}
	for _, add := range commands {
		root.AddCommand(add(g))
	}
	return root
}

// Annotations a command sets to change the logging defaults, for the
// commands that run for long and are watched through their logs.
const (
	defaultLogLevel  = "pipit.dev/default-log-level"
	defaultLogFormat = "pipit.dev/default-log-format"
)

// logger builds the logger of cmd from --log-format, --log-level and -v,
// falling back on cmd's defaults.
func (g *globals) logger(cmd *cobra.Command) (*slog.Logger, error) {
	level := slog.LevelWarn
	if s := cmd.Annotations[defaultLogLevel]; s != "" {
		_ = level.UnmarshalText([]byte(s))
	}
	if g.verbose {
		level = slog.LevelDebug
	}
	if g.logLevel != "" {
		if err := level.UnmarshalText([]byte(g.logLevel)); err != nil {
			return nil, BadInputf("--log-level %q: want debug, info, warn or error", g.logLevel)
		}
	}
	format := cmp.Or(g.logFormat, cmd.Annotations[defaultLogFormat], "text")
	opts := &slog.HandlerOptions{Level: level}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(cmd.ErrOrStderr(), opts)), nil
	}
	return nil, BadInputf("--log-format %q: want text or json", format)
}

// preVerbFlags are the flags that pick a cluster or a daemon, which
// kubectl users write before the verb (pipit -n shop --kube status web).
// The root accepts them there and hands them to the verb, which must have
// the flag itself: written after the verb they work as they always did.
var preVerbFlags = []preVerbFlag{
	{name: "kube", isBool: true}, {name: "kubeconfig"}, {name: "context"}, {name: "namespace", short: "n"},
	{name: "state-dir"}, {name: "api"}, {name: "token-file"},
}

type preVerbFlag struct {
	name, short string
	isBool      bool
}

// handOverPreVerbFlags sets the flags given before the verb on the verb.
func handOverPreVerbFlags(root, verb *cobra.Command) error {
	var err error
	root.Flags().Visit(func(f *pflag.Flag) {
		if err != nil || verb == root || !slices.ContainsFunc(preVerbFlags, func(p preVerbFlag) bool { return p.name == f.Name }) {
			return
		}
		target := verb.Flags().Lookup(f.Name)
		switch {
		case target == nil:
			err = BadInputf("--%s does not go with pipit %s", f.Name, verb.Name())
		case target.Changed:
			err = BadInputf("--%s is given both before and after %s", f.Name, verb.Name())
		default:
			err = verb.Flags().Set(f.Name, f.Value.String())
		}
	})
	return err
}

// commands is filled by each verb's file in its init function, so adding a
// verb touches one file only.
var commands []func(*globals) *cobra.Command

func register(c func(*globals) *cobra.Command) { commands = append(commands, c) }

// exactArgs is cobra.ExactArgs with a bad-input exit code.
func exactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		return BadInput(cobra.ExactArgs(n)(cmd, args))
	}
}
