package proxy

import (
	"context"
	"sync"
)

// background runs the work a request starts but does not wait for: the
// mirrored copies (at most mirrorInFlight at once), the ejection callback
// (one per ejection) and the reloads of inFile lists (one per list at a
// time). Every task runs on a goroutine the group owns; Close cancels the
// tasks' context and waits for them, and no task starts after it.
type background struct {
	ctx    context.Context
	cancel context.CancelFunc
	mu     sync.Mutex // orders Go's Add before Close's Wait
	closed bool
	tasks  sync.WaitGroup
}

func newBackground() *background {
	ctx, cancel := context.WithCancel(context.Background())
	return &background{ctx: ctx, cancel: cancel}
}

// Go runs task on a goroutine of the group and reports true, or reports
// false without running it once the group is closed.
func (b *background) Go(task func(ctx context.Context)) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return false
	}
	b.tasks.Go(func() { task(b.ctx) })
	return true
}

// Close cancels the running tasks and waits for them to return.
func (b *background) Close() {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	b.cancel()
	b.tasks.Wait()
}
