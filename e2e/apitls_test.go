package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pipit-dev/pipit/internal/controlapi"
	"github.com/pipit-dev/pipit/internal/testenv/nettest"
)

// The control API over TLS: `pipit up --tls-cert --tls-key` serves it with
// the certificate, the CLI trusts it with --ca-file and refuses it
// without; plain HTTP on an address other than loopback is refused unless
// --insecure.
func TestControlAPIOverTLS(t *testing.T) {
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	nettest.WriteCert(t, cert, key, 1)
	file := writeRollout(t, freePort(t), sampleApp(t, "v1"), "1m")
	state := t.TempDir()
	cmd := exec.Command(pipitBin, "up", "-f", file, "--state-dir", state, "--api", "127.0.0.1:0", "--tls-cert", cert, "--tls-key", key)
	d := runDaemon(t, cmd, state, file)
	t.Cleanup(func() { d.cmd.Process.Kill(); d.cmd.Wait() })
	var addr []byte
	for deadline := time.Now().Add(30 * time.Second); len(addr) == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("pipit up did not start:\n%s", d.output())
		}
		addr, _ = os.ReadFile(filepath.Join(state, controlapi.AddressFile))
	}
	if !strings.HasPrefix(string(addr), "https://") {
		t.Errorf("address file %q, want an https URL", addr)
	}
	if r := pipit(t, 15*time.Second, "status", "web", "--state-dir", state, "--ca-file", cert); r.code != 0 || !strings.Contains(r.stdout, "Idle") {
		t.Fatalf("status over TLS: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := pipit(t, 15*time.Second, "status", "web", "--state-dir", state); r.code != 1 || !strings.Contains(r.stderr, "certificate") {
		t.Errorf("status without --ca-file: exit %d: %s", r.code, r.stderr)
	}

	r := pipit(t, 15*time.Second, "up", "-f", file, "--state-dir", t.TempDir(), "--api", "0.0.0.0:0")
	if r.code != 2 || !strings.Contains(r.stderr, "needs TLS") {
		t.Errorf("plain HTTP on every interface: exit %d: %s", r.code, r.stderr)
	}
}
