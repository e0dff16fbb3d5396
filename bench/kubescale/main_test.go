package kubescale

import (
	"os"
	"testing"

	"github.com/pipit-dev/pipit/internal/testenv/kubecluster"
)

// TestMain stops the test cluster, which only the benchmark starts, after
// the run.
func TestMain(m *testing.M) {
	code := m.Run()
	kubecluster.StopShared()
	os.Exit(code)
}
