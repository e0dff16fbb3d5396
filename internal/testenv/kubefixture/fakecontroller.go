package kubefixture

import (
	"context"
	"sync"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/pipit-dev/pipit/api/v1alpha1"
)

// defaultEvery is FakeController's time between two looks when Every is
// not set.
const defaultEvery = 20 * time.Millisecond

// FakeController plays the pipit controller's part for one Rollout, for
// tests of the CLI's commands: it takes the requests out of
// status.commands and answers each in status.commandResults with what
// Decide says, in one status write with the resourceVersion it read, as the
// real controller does. Against a real API server or a fake client alike.
type FakeController struct {
	// Client reads and writes the Rollout.
	Client client.Client
	// Key names the Rollout.
	Key client.ObjectKey
	// Decide answers a request: "" accepts it, anything else is the
	// refusal's reason. It may change the status, which is written with
	// the answer.
	Decide func(st *v1alpha1.RolloutStatus, req v1alpha1.CommandRequest) string
	// Every is the time between two looks at the Rollout (20ms if 0).
	Every time.Duration
	// DropResults makes it never write the answers, as when later answers
	// pushed them out of the list.
	DropResults bool

	mu          sync.Mutex
	answerDelay time.Duration
	seen        []v1alpha1.CommandRequest
}

// Run answers requests in the background until the test ends.
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

// SetAnswerDelay makes the next answers come in a second write, d after
// the one that took the requests out of status.commands, as the real
// controller may answer.
func (f *FakeController) SetAnswerDelay(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.answerDelay = d
}

// Once answers the requests waiting now, if any. A write that conflicts
// with another writer is dropped: the next look tries again.
func (f *FakeController) Once(ctx context.Context) {
	r := &v1alpha1.Rollout{}
	if err := f.Client.Get(ctx, f.Key, r); err != nil || len(r.Status.Commands) == 0 {
		return
	}
	f.mu.Lock()
	delay := f.answerDelay
	f.mu.Unlock()
	reqs := r.Status.Commands
	var results []v1alpha1.CommandResult
	for _, req := range reqs {
		results = append(results, v1alpha1.CommandResult{ID: req.ID, Error: f.Decide(&r.Status, req)})
	}
	r.Status.Commands = nil
	if delay == 0 && !f.DropResults {
		r.Status.CommandResults = append(r.Status.CommandResults, results...)
	}
	if f.Client.Status().Update(ctx, r) != nil {
		return
	}
	f.mu.Lock()
	f.seen = append(f.seen, reqs...)
	f.mu.Unlock()
	if delay == 0 || f.DropResults {
		return
	}
	time.Sleep(delay)
	for ctx.Err() == nil {
		if err := f.Client.Get(ctx, f.Key, r); err != nil {
			return
		}
		r.Status.CommandResults = append(r.Status.CommandResults, results...)
		if f.Client.Status().Update(ctx, r) == nil {
			return
		}
	}
}

// Requests returns the requests taken so far, in order.
func (f *FakeController) Requests() []v1alpha1.CommandRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]v1alpha1.CommandRequest(nil), f.seen...)
}
