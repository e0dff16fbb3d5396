package kubefixture

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// RepoPath returns the path of rel, a path relative to the repository's
// root: the directory of the go.mod of the module the test runs in, as the
// go command finds it from the working directory (the test's package
// directory), so a test finds the repository's files from any depth.
func RepoPath(t testing.TB, rel string) string {
	t.Helper()
	root, err := repoRoot()
	if err != nil {
		t.Fatalf("kubefixture: %v", err)
	}
	return filepath.Join(root, filepath.FromSlash(rel))
}

// repoRoot asks the go command, which `go test` puts on the PATH, once.
var repoRoot = sync.OnceValues(func() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), CallTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("find the repository's root: `go env GOMOD`: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if filepath.Base(gomod) != "go.mod" {
		return "", fmt.Errorf("find the repository's root: the working directory is in no Go module (go env GOMOD says %q)", gomod)
	}
	return filepath.Dir(gomod), nil
})
