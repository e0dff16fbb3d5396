//go:build race

package route

// raceEnabled: the race detector is on, and sync.Pool drops a quarter of
// what it is given on purpose, so pooled state is sometimes made afresh.
const raceEnabled = true
