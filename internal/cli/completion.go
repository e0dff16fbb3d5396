package cli

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// completionTimeout bounds the look-up of rollout names while a shell
// completes a command line: a person waits on it at every Tab.
const completionTimeout = 2 * time.Second

// completeRolloutNames completes a verb's first argument, the NAME of a
// rollout, with the rollouts of the daemon or cluster the verb's flags
// point at (those given before the verb included). Whatever goes wrong (no
// daemon, no cluster, too slow) it offers nothing and says nothing: a
// completion is no place for an error. Files are never offered.
func (b *backendFlags) completeRolloutNames(cmd *cobra.Command, args []string, prefix string) ([]cobra.Completion, cobra.ShellCompDirective) {
	const directive = cobra.ShellCompDirectiveNoFileComp
	if len(args) > 0 || handOverPreVerbFlags(cmd.Root(), cmd) != nil {
		return nil, directive
	}
	backend, err := b.backend()
	if err != nil {
		return nil, directive
	}
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := withTimeout(ctx, b.g.clock, completionTimeout)
	defer cancel()
	views, err := backend.Rollouts(ctx)
	if err != nil {
		return nil, directive
	}
	var names []cobra.Completion
	for _, v := range views {
		if strings.HasPrefix(v.Name, prefix) {
			names = append(names, v.Name)
		}
	}
	slices.Sort(names)
	return names, directive
}
