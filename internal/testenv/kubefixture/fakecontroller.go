package kubefixture

import (
	"context"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/pipit-dev/pipit/api/v1alpha1"
)

// defaultEvery is FakeController's time between two looks when Every is
// not set.
const defaultEvery = 20 * time.Millisecond

// FakeController plays the pipit controller's part for one Rollout, for
// tests of the CLI's commands: it answers the RolloutCommands to it in
// their status with what Decide says, oldest first, after writing the
// Rollout's status when Decide changed it, as the real controller does.
// Against a real API server or a fake client alike.
type FakeController struct {
	// Client reads and writes the Rollout and its commands.
	Client client.Client
	// Key names the Rollout.
	Key client.ObjectKey
	// Decide answers a command: "" applies it, anything else is the
	// refusal's reason. It may change the status, which is written before
	// the answer.
	Decide func(st *v1alpha1.RolloutStatus, cmd *v1alpha1.RolloutCommand) string
	// Every is the time between two looks at the commands (20ms if 0).
	Every time.Duration

	mu   sync.Mutex
	seen []v1alpha1.RolloutCommand
}

// Run answers commands in the background until the test ends.
func (f *FakeController) Run(t testing.TB) {
	every := f.Every
	if every == 0 {
		every = defaultEvery
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			f.Once(ctx)
			time.Sleep(every)
		}
	}()
}

// Once answers the commands waiting now, if any. A write that conflicts
// with another writer is dropped: the next look tries again.
func (f *FakeController) Once(ctx context.Context) {
	var list v1alpha1.RolloutCommandList
	if err := f.Client.List(ctx, &list, client.InNamespace(f.Key.Namespace)); err != nil {
		return
	}
	cmds := slices.DeleteFunc(list.Items, func(c v1alpha1.RolloutCommand) bool {
		return c.Spec.Rollout != f.Key.Name || c.Status.Consumed
	})
	slices.SortFunc(cmds, func(a, b v1alpha1.RolloutCommand) int {
		if c := a.CreationTimestamp.Compare(b.CreationTimestamp.Time); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	for i := range cmds {
		if !f.answer(ctx, &cmds[i]) {
			return
		}
	}
}

// answer decides one command and writes the decision: the Rollout's
// status first, then the command's. It reports whether both were written.
func (f *FakeController) answer(ctx context.Context, cmd *v1alpha1.RolloutCommand) bool {
	r := &v1alpha1.Rollout{}
	if err := f.Client.Get(ctx, f.Key, r); err != nil {
		return false
	}
	before := r.Status.DeepCopy()
	refusal := f.Decide(&r.Status, cmd)
	if !reflect.DeepEqual(before, &r.Status) {
		if f.Client.Status().Update(ctx, r) != nil {
			return false
		}
	}
	cmd.Status = v1alpha1.RolloutCommandStatus{Consumed: true, Result: v1alpha1.CommandApplied, ConsumedAt: &metav1.Time{Time: time.Now()}}
	if refusal != "" {
		cmd.Status.Result, cmd.Status.Message = v1alpha1.CommandRefused, refusal
	}
	if f.Client.Status().Update(ctx, cmd) != nil {
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seen = append(f.seen, *cmd)
	return true
}

// Commands returns the commands answered so far, in order.
func (f *FakeController) Commands() []v1alpha1.RolloutCommand {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.seen)
}
