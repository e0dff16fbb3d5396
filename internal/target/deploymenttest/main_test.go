// Package deploymenttest tests the Kubernetes Deployment target against a
// real control plane, where the Deployment controller, the scheduler, the
// autoscaler and the garbage collector act on what the target writes.
package deploymenttest

import (
	"testing"

	"github.com/go-logr/logr"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/pipit-dev/pipit/internal/testenv/kubefixture"
)

// TestMain stops the cluster the tests of this package share after they
// ran. controller-runtime's own logs are not wanted: the target logs
// through slog.
func TestMain(m *testing.M) {
	ctrllog.SetLogger(logr.Discard())
	kubefixture.Main(m)
}
