package cli

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pipit-dev/pipit/internal/controlapi"
	"github.com/pipit-dev/pipit/internal/spec"
)

// refusedFiles is a reload the daemon refused, as its ConfigError is.
type refusedFiles struct{ msg string }

func (e refusedFiles) Error() string        { return e.msg }
func (e refusedFiles) Is(target error) bool { return target == controlapi.ErrInvalidConfig }

// TestReloadPrintsWhatChanged: pipit reload asks the daemon once and
// prints a line for each rollout added, changed or removed.
func TestReloadPrintsWhatChanged(t *testing.T) {
	f := newFakeBackend()
	dir := startDaemon(t, f)
	code, out, errOut := run(t, "reload", "--state-dir", dir)
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{"added    blog", "changed  web: spec.strategy, spec.service.listen", "removed  api (its state is kept)"} {
		if !strings.Contains(out, want) {
			t.Errorf("output %q lacks %q", out, want)
		}
	}
	if f.reloads != 1 {
		t.Errorf("%d reloads, want 1", f.reloads)
	}
}

// TestReloadExitCodes: files the daemon refused exit 2 printing what
// pipit validate prints for them; a daemon that cannot be reached, or
// that fails otherwise, exits 1; stray arguments are bad input.
func TestReloadExitCodes(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "web.yaml")
	if err := os.WriteFile(bad, []byte("apiVersion: pipit.dev/v1alpha1\nkind: Rollout\nmetadata: {name: web}\nspec:\n  strategy: {steps: [{setWeight: 500}]}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(bad)
	_, loadErr := spec.ParseFile(bad, data)
	vcode, validated, _ := run(t, "validate", bad)
	if vcode != ExitBadInput || loadErr == nil {
		t.Fatalf("validate: exit %d (%v), want a refused file", vcode, loadErr)
	}
	f := newFakeBackend()
	dir := startDaemon(t, f)
	f.reloadErr = refusedFiles{describeLoadError(bad, loadErr)}
	code, out, errOut := run(t, "reload", "--state-dir", dir)
	if code != ExitBadInput || out != validated || !strings.Contains(errOut, "nothing was changed") {
		t.Errorf("refused: exit %d\nstdout %q\nwant   %q (as pipit validate)\nstderr %q", code, out, validated, errOut)
	}
	f.reloadErr = errors.New("disk on fire")
	if code, _, errOut := run(t, "reload", "--state-dir", dir); code != ExitFailed || !strings.Contains(errOut, "internal error") {
		t.Errorf("failed: exit %d: %s", code, errOut)
	}
	if code, _, errOut := run(t, "reload", "--state-dir", t.TempDir()); code != ExitFailed || !strings.Contains(errOut, "no pipit daemon found") {
		t.Errorf("no daemon: exit %d: %s", code, errOut)
	}
	if code, _, _ := run(t, "reload", "now", "--state-dir", dir); code != ExitBadInput {
		t.Errorf("stray argument: exit %d, want %d", code, ExitBadInput)
	}
}
