package cli

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/pipit-dev/pipit/internal/controlapi"
	"github.com/pipit-dev/pipit/internal/rollout"
)

// commandFlags are the flags of every verb that sends a command.
type commandFlags struct {
	backend *backendFlags
	reason  string
}

func addCommandFlags(cmd *cobra.Command, g *globals) *commandFlags {
	f := &commandFlags{backend: addBackendFlags(cmd, g)}
	cmd.Flags().StringVar(&f.reason, "reason", "", "why, in your words; kept in the rollout's history")
	return f
}

// submit sends c to the rollout on behalf of the user and prints where
// the rollout stands after it. A refusal is a failed operation.
func (f *commandFlags) submit(cmd *cobra.Command, name string, c rollout.Command) error {
	_, _, err := f.send(cmd, name, c)
	return err
}

// send is submit, which also returns the rollout as the command left it
// and the backend it went through, to follow the rollout on.
func (f *commandFlags) send(cmd *cobra.Command, name string, c rollout.Command) (controlapi.RolloutView, controlapi.Backend, error) {
	b, err := f.backend.backend()
	if err != nil {
		return controlapi.RolloutView{}, nil, err
	}
	c.Actor, c.Reason = actor(), f.reason
	v, err := b.Submit(cmd.Context(), name, c)
	var refused *controlapi.RefusedError
	if errors.As(err, &refused) {
		return v, b, fmt.Errorf("%s %s refused: %s", c.Kind, name, refused.Reason)
	}
	if err != nil {
		return v, b, err
	}
	_, err = fmt.Fprintln(cmd.OutOrStdout(), outcomeLine(v))
	return v, b, err
}

// outcomeLine sums a rollout up in one line: "web: Progressing, step 1/6
// setWeight 5%, weight 5% (routing 5% to canary v2)".
func outcomeLine(v controlapi.RolloutView) string {
	st := v.Status
	s := fmt.Sprintf("%s: %s", v.Name, phase(st.Phase))
	if step := stepLabel(v); step != "-" {
		s += ", step " + step
	}
	s += ", weight " + st.CanaryWeight.String()
	if st.Message != "" {
		s += " (" + st.Message + ")"
	}
	return s
}

// newSimpleCommand builds a verb that sends a command of one kind, with
// nothing to say but the rollout's name.
func newSimpleCommand(g *globals, kind rollout.CommandKind, short, long, example string) *cobra.Command {
	var flags *commandFlags
	cmd := &cobra.Command{
		Use:     string(kind) + " NAME",
		Short:   short,
		Long:    long,
		Example: example,
		Args:    exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return flags.submit(cmd, args[0], rollout.Command{Kind: kind})
		},
	}
	flags = addCommandFlags(cmd, g)
	return cmd
}
