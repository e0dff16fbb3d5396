package cli

import (
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pipit-dev/pipit/internal/controlapi"
)

// TestCompleteRolloutNames: the shell completes a rollout's NAME with the
// names the daemon has, and says nothing when no daemon answers.
func TestCompleteRolloutNames(t *testing.T) {
	dir := startDaemon(t, newFakeBackend())
	down := t.TempDir()
	token := filepath.Join(dir, controlapi.TokenFile)
	// A listener that never answers: the look-up gives up at its timeout.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	silent := l.Addr().String()
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"status", "--state-dir", dir, ""}, "api\nweb\n:4\n"},
		{[]string{"get", "--state-dir", dir, "w"}, "web\n:4\n"},
		{[]string{"promote", "--state-dir", dir, ""}, "api\nweb\n:4\n"},
		{[]string{"--state-dir", dir, "history", ""}, "api\nweb\n:4\n"},         // a flag before the verb
		{[]string{"set-weight", "web", "--state-dir", dir, ""}, ":4\n"},         // PERCENT is no name
		{[]string{"abort", "--state-dir", down, ""}, ":4\n"},                    // no daemon
		{[]string{"pause", "--api", silent, "--token-file", token, ""}, ":4\n"}, // a daemon that does not answer
		{[]string{"status", "--kube", "--kubeconfig", filepath.Join(down, "none"), ""}, ":4\n"},
		{[]string{"status", "--state-dir", dir, "-o", ""}, "table\njson\nyaml\n:4\n"},
		{[]string{"version", "-o", ""}, "text\njson\nyaml\n:4\n"},
	} {
		args := tt.args
		start := time.Now()
		code, out, errOut := run(t, append([]string{"__complete"}, args...)...)
		if code != ExitOK || out != tt.want {
			t.Errorf("complete %q: exit %d, %q; want %q", args, code, out, tt.want)
		}
		if strings.Contains(errOut, "rror") || strings.Contains(errOut, down) {
			t.Errorf("complete %q: stderr %q, want no error", args, errOut)
		}
		if d := time.Since(start); d > completionTimeout+time.Second {
			t.Errorf("complete %q took %s, more than the completion's timeout", args, d)
		}
	}
}

// TestEveryVerbOnARolloutCompletesItsName: every verb whose first
// argument is a rollout's NAME completes it.
func TestEveryVerbOnARolloutCompletesItsName(t *testing.T) {
	verbs := 0
	for _, cmd := range NewRoot(nil, nil).Commands() {
		if !strings.Contains(cmd.Use, " NAME") && !strings.Contains(cmd.Use, " [NAME]") {
			continue
		}
		verbs++
		if cmd.ValidArgsFunction == nil {
			t.Errorf("pipit %s takes a NAME but does not complete it", cmd.Name())
		}
	}
	if verbs < 10 {
		t.Fatalf("only %d verbs take a NAME", verbs)
	}
}
