package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestDashboardListensOnLoopbackOnly: an address other than loopback is
// refused before the kubeconfig is read, with why.
func TestDashboardListensOnLoopbackOnly(t *testing.T) {
	for _, listen := range []string{"0.0.0.0:3100", ":3100", "192.168.1.5:3100", "localhost", "example.com:3100"} {
		var out, errOut bytes.Buffer
		code := Execute(context.Background(), []string{"dashboard", "--listen", listen, "--kubeconfig", "/nonexistent"}, &out, &errOut)
		if code != ExitBadInput || !strings.Contains(errOut.String(), "--listen") {
			t.Errorf("--listen %s: exit %d: %s, want %d naming --listen", listen, code, errOut.String(), ExitBadInput)
		}
	}
}
