// Package tools gives tests the programs they run that Go does not bring:
// Debian packages, installed by the repository's script when missing.
package tools

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// installScript is the repository's installer, relative to its root.
const installScript = "hack/install-debian.sh"

// installTimeout bounds an install (apt on a fresh machine).
const installTimeout = 10 * time.Minute

// installMu keeps the tests of one package from installing twice; the
// script itself locks against other packages.
var installMu sync.Mutex

// EnsureDebian makes sure binary exists, installing Debian's package pkg
// with hack/install-debian.sh when it does not, and fails the test when it
// cannot.
func EnsureDebian(t testing.TB, pkg, binary string) {
	t.Helper()
	installMu.Lock()
	defer installMu.Unlock()
	if _, err := os.Stat(binary); err == nil {
		return
	}
	root, err := RepoRoot()
	if err != nil {
		t.Fatalf("%s is missing and the installer cannot be found: %v", binary, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), installTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, "bash", filepath.Join(root, installScript), pkg, binary).CombinedOutput()
	if err != nil {
		t.Fatalf("%s is missing and `bash %s %s %s` failed (it needs root and Debian's apt): %v\n%s",
			binary, installScript, pkg, binary, err, out)
	}
	if _, err := os.Stat(binary); err != nil {
		t.Fatalf("%s still missing after `bash %s %s %s`:\n%s", binary, installScript, pkg, binary, out)
	}
}

// RepoRoot is the nearest directory above the working directory (a
// test's package directory) with a go.mod.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}
