package standalone

import (
	"time"

	"github.com/pipit-dev/pipit/internal/rollout"
)

// nowClock is the daemon's now function as a rollout.Clock, for the
// components that take one: it reads time through now and waits on the
// wall clock.
type nowClock struct {
	rollout.SystemClock
	now func() time.Time
}

// Now is the daemon's now.
func (c nowClock) Now() time.Time { return c.now() }
