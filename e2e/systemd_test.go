package e2e

import (
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pipit-dev/pipit/internal/controlapi"
	"github.com/pipit-dev/pipit/internal/testenv/tools"
)

// systemd's tools, from Debian's systemd package.
const (
	systemdAnalyze        = "/usr/bin/systemd-analyze"
	systemdSocketActivate = "/usr/bin/systemd-socket-activate"
)

// TestSystemdUnitsVerify: the units shipped under deploy/systemd pass
// systemd-analyze verify without a warning, with ExecStart pointing at
// this pipit binary, and docs/operations.md shows them as they are.
func TestSystemdUnitsVerify(t *testing.T) {
	tools.EnsureDebian(t, "systemd", systemdAnalyze)
	ops, err := os.ReadFile(filepath.Join("..", "docs", "operations.md"))
	if err != nil {
		t.Fatal(err)
	}
	docs := string(ops)
	dir := t.TempDir()
	var paths []string
	for _, unit := range []string{"pipit.service", "pipit.socket"} {
		b, err := os.ReadFile(filepath.Join("..", "deploy", "systemd", unit))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(docs, "```ini\n"+string(b)+"```\n") {
			t.Errorf("docs/operations.md does not show deploy/systemd/%s as it is", unit)
		}
		if unit == "pipit.service" && !strings.Contains(string(b), "ExecStart=/usr/local/bin/pipit up ") {
			t.Fatalf("%s no longer starts /usr/local/bin/pipit up", unit)
		}
		p := filepath.Join(dir, unit)
		if err := os.WriteFile(p, []byte(strings.ReplaceAll(string(b), "/usr/local/bin/pipit", pipitBin)), 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	out, err := exec.Command(systemdAnalyze, append([]string{"verify", "--man=no"}, paths...)...).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "" {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// TestSystemdSocketActivation runs `pipit up` under systemd's socket
// activation: systemd-socket-activate binds the proxy's and the control
// API's addresses and starts pipit on the first connection, passing the
// sockets (LISTEN_FDS). That first request waits in the socket's backlog
// and is answered; pipit could not have bound the addresses itself, as
// they are taken.
func TestSystemdSocketActivation(t *testing.T) {
	tools.EnsureDebian(t, "systemd", systemdSocketActivate)
	listen, api := freePort(t), freePort(t)
	file := writeRollout(t, listen, versionServer(t, "v1"), "1h")
	state := t.TempDir()
	cmd := exec.Command(systemdSocketActivate, "-l", listen, "-l", api,
		pipitBin, "up", "-f", file, "--state-dir", state, "--api", api)
	d := runDaemon(t, cmd, state, file)
	t.Cleanup(func() { d.stopGracefully(20 * time.Second) })

	// The first connection starts pipit; it waits until pipit serves.
	var resp *http.Response
	var err error
	client := &http.Client{Timeout: 30 * time.Second}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		// Until systemd-socket-activate listens, the dial is refused.
		if resp, err = client.Get("http://" + listen + "/"); err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		t.Fatalf("first request: %v\n%s", err, d.output())
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || strings.TrimSpace(string(body)) != "v1" {
		t.Fatalf("first request: %d %q\n%s", resp.StatusCode, body, d.output())
	}
	addr, err := os.ReadFile(filepath.Join(state, controlapi.AddressFile))
	if err != nil || strings.TrimSpace(string(addr)) != api {
		t.Fatalf("control API on %q (%v), want the activated %s", addr, err, api)
	}
	if st := d.status(); st.Status.Stable == nil || st.Status.Stable.Version != "v1" {
		t.Fatalf("status through the activated control API: %+v", st.Status)
	}
}
