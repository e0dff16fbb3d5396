//go:build !race

package route

// raceEnabled: the race detector is off (see race_test.go).
const raceEnabled = false
