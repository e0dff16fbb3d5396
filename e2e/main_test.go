// Package e2e holds acceptance tests that drive the real pipit binary as a
// user would: built once, run as separate processes, killed for real.
package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pipit-dev/pipit/internal/testenv/kubecluster"
)

// pipitBin is the binary built for this test run.
var pipitBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "pipit-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	pipitBin = filepath.Join(dir, "pipit")
	build := exec.Command("go", "build", "-o", pipitBin, "../cmd/pipit")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building pipit:", err)
		os.Exit(1)
	}
	code := m.Run()
	kubecluster.StopShared()
	os.RemoveAll(dir)
	os.Exit(code)
}

// result is what one run of the binary did.
type result struct {
	code           int
	stdout, stderr string
}

// pipit runs the binary to completion with a timeout.
func pipit(t testing.TB, timeout time.Duration, args ...string) result {
	t.Helper()
	return pipitWithInput(t, timeout, "", args...)
}

// pipitWithInput runs the binary as pipit does, with stdin as its
// standard input.
func pipitWithInput(t testing.TB, timeout time.Duration, stdin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, pipitBin, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	if ctx.Err() != nil {
		t.Fatalf("pipit %v did not finish within %s\nstdout:\n%s\nstderr:\n%s", args, timeout, r.stdout, r.stderr)
	}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return r
}
