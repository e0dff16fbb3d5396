package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestKeysRotate: pipit keys rotate asks the daemon once and says until
// when the previous key's cookies are honoured; the daemon flags work
// before the verb too.
func TestKeysRotate(t *testing.T) {
	f := newFakeBackend()
	dir := startDaemon(t, f)
	code, out, errOut := run(t, "keys", "rotate", "--state-dir", dir)
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC) // as the fake answers
	for _, want := range []string{
		"Rotated the sticky-cookie key at " + at.Local().Format(timeLayout),
		"web  " + at.Add(time.Hour).Local().Format(timeLayout) + "  (1h0m0s after the rotation)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output %q lacks %q", out, want)
		}
	}
	if code, _, errOut := run(t, "--state-dir", dir, "keys", "rotate"); code != ExitOK {
		t.Fatalf("--state-dir before the verb: exit %d: %s", code, errOut)
	}
	if f.rotations != 2 {
		t.Fatalf("%d rotations, want 2", f.rotations)
	}
}

// TestKeysRotateRefused: --kube, stray arguments and unknown subcommands
// are bad input (exit 2), a token the daemon refuses a failure (exit 1);
// none of them rotates anything.
func TestKeysRotateRefused(t *testing.T) {
	f := newFakeBackend()
	dir := startDaemon(t, f)
	wrongToken := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(wrongToken, []byte("not-the-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"keys", "rotate", "--kube"}, ExitBadInput, "sticky cookies are signed by the standalone proxy"},
		{[]string{"--kube", "keys", "rotate"}, ExitBadInput, "does not go with --kube"},
		{[]string{"keys", "rotate", "--kubeconfig", "x"}, ExitBadInput, "unknown flag: --kubeconfig"},
		{[]string{"keys", "rotate", "now", "--state-dir", dir}, ExitBadInput, "accepts 0 arg"},
		{[]string{"keys", "spin"}, ExitBadInput, `unknown command "spin" for "pipit keys"`},
		{[]string{"keys", "rotate", "--api", "not an address"}, ExitBadInput, "--api"},
		{[]string{"keys", "rotate", "--state-dir", dir, "--token-file", wrongToken}, ExitFailed, "rejected the token"},
		{[]string{"keys", "rotate", "--state-dir", t.TempDir()}, ExitFailed, "no pipit daemon found"},
	} {
		code, _, errOut := run(t, tc.args...)
		if code != tc.code || !strings.Contains(errOut, tc.want) {
			t.Errorf("pipit %s: exit %d, %q; want %d naming %q", strings.Join(tc.args, " "), code, errOut, tc.code, tc.want)
		}
	}
	if f.rotations != 0 {
		t.Errorf("%d rotations from refused command lines", f.rotations)
	}
}
