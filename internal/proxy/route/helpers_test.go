package route

import (
	"context"
	"log/slog"
	"sync"
	"testing"

	"github.com/pipit-dev/pipit/api/v1alpha1"
)

// testLogger writes to the test's output, shown when it fails or with -v.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// testTaskGroup runs the tasks of a test's tables, and stops and waits
// for them when the test ends.
type testTaskGroup struct {
	ctx    context.Context
	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

// Go implements Tasks.
func (g *testTaskGroup) Go(task func(context.Context)) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return false
	}
	g.wg.Go(func() { task(g.ctx) })
	return true
}

// testTasks is a task group closed when the test ends.
func testTasks(t testing.TB) Tasks {
	ctx, cancel := context.WithCancel(context.Background())
	g := &testTaskGroup{ctx: ctx}
	t.Cleanup(func() {
		g.mu.Lock()
		g.closed = true
		g.mu.Unlock()
		cancel()
		g.wg.Wait()
	})
	return g
}

// testTable is a table at weight routing to a stable v1 and a ready
// canary v2, with no policy.
func testTable(weight int) *Table {
	t := Table{weight: v1alpha1.Percent(weight)}.WithUpstreams("v1", "v2", true)
	return &t
}
