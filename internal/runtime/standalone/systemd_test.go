package standalone

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pipit-dev/pipit/internal/testenv/tools"
)

const systemdAnalyze = "/usr/bin/systemd-analyze"

// systemdUnits are the unit files shipped under deploy/systemd.
var systemdUnits = []string{"pipit.service", "pipit.socket"}

// TestSystemdUnitsVerify: the shipped units pass systemd-analyze verify
// without a warning, with ExecStart pointing at a real pipit binary.
func TestSystemdUnitsVerify(t *testing.T) {
	tools.EnsureDebian(t, "systemd", systemdAnalyze)
	root, err := tools.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin := tools.BuildPipit(t)
	dir := t.TempDir()
	var paths []string
	for _, u := range systemdUnits {
		b, err := os.ReadFile(filepath.Join(root, "deploy", "systemd", u))
		if err != nil {
			t.Fatal(err)
		}
		if u == "pipit.service" && !strings.Contains(string(b), "ExecStart=/usr/local/bin/pipit up ") {
			t.Fatalf("%s no longer starts /usr/local/bin/pipit up", u)
		}
		p := filepath.Join(dir, u)
		if err := os.WriteFile(p, []byte(strings.ReplaceAll(string(b), "/usr/local/bin/pipit", bin)), 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	out, err := exec.Command(systemdAnalyze, append([]string{"verify", "--man=no"}, paths...)...).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}
