package routertest

import (
	"testing"

	"github.com/pipit-dev/pipit/internal/testenv/kubefixture"
)

// TestMain stops the test binary's cluster, which the tests of this package
// share, after they ran.
func TestMain(m *testing.M) { kubefixture.Main(m) }
