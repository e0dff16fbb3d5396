package analysis

import (
	"fmt"

	"github.com/pipit-dev/pipit/internal/analysis/stats"
	"github.com/pipit-dev/pipit/internal/rollout"
)

// ErrorRateAlarm names the alarm the sequential error-rate test raises.
const ErrorRateAlarm = "error-rate (sequential)"

// RateMonitor runs the anytime-valid error-rate test of one canary against
// the stable version, fed with cumulative request and error counts as
// often as the runtime likes: it raises an alarm as soon as the canary is
// worse with the configured false-alarm probability, between checks too.
// A new canary version starts a new test. It holds its test's state, so it
// belongs to the runtime; the decision it feeds the engine is an Alarm.
type RateMonitor struct {
	alpha   float64
	version string
	base    [4]uint64 // counts when the version was first seen
	test    *stats.RateTest
	alarmed bool
}

// NewRateMonitor returns a monitor with false-alarm probability alpha.
func NewRateMonitor(alpha float64) *RateMonitor { return &RateMonitor{alpha: alpha} }

// Observe takes the cumulative counts of the canary version and of the
// stable, and returns an alarm the first time the canary is found worse.
// Counts that go down (the proxy restarted its counters) start a new test.
func (m *RateMonitor) Observe(version string, canaryN, canaryErrors, stableN, stableErrors uint64) (*rollout.Alarm, error) {
	now := [4]uint64{canaryN, canaryErrors, stableN, stableErrors}
	if m.test == nil || version != m.version || below(now, m.base) {
		t, err := stats.NewRateTest(stats.RateConfig{Alpha: m.alpha})
		if err != nil {
			return nil, err
		}
		m.test, m.version, m.base, m.alarmed = t, version, now, false
	}
	if err := m.test.Observe(now[0]-m.base[0], now[1]-m.base[1], now[2]-m.base[2], now[3]-m.base[3]); err != nil {
		m.test = nil
		return nil, err
	}
	if m.alarmed || m.test.Decision() != stats.RateWorse {
		return nil, nil
	}
	m.alarmed = true
	s := m.test.Status()
	return &rollout.Alarm{Metric: ErrorRateAlarm, Reason: fmt.Sprintf(
		"canary error rate %s%% (%d of %d) is higher than stable's %s%% (%d of %d) at false-alarm probability %s",
		num(100*s.CanaryRate), s.CanaryEvents, s.CanaryN, num(100*s.StableRate), s.StableEvents, s.StableN, num(m.alpha))}, nil
}

func below(a, b [4]uint64) bool {
	for i := range a {
		if a[i] < b[i] {
			return true
		}
	}
	return false
}
