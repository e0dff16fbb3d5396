package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A token's role decides what its holder may do through the CLI: a viewer
// reads and is refused a command with the role it needs; an operator
// steers, and the history names the token; a revoked token is rejected;
// a bad role is bad input.
func TestTokensWithRolesThroughTheCLI(t *testing.T) {
	listen := freePort(t)
	d := startUp(t, writeRollout(t, listen, sampleApp(t, "v1"), "1m"), t.TempDir())
	d.name = "web"
	state := d.stateDir
	tokenFile := func(name, role string) string {
		t.Helper()
		r := pipit(t, 15*time.Second, "token", "create", name, "--role", role, "--state-dir", state)
		if r.code != 0 || len(strings.TrimSpace(r.stdout)) != 64 {
			t.Fatalf("token create %s: exit %d\n%s%s", name, r.code, r.stdout, r.stderr)
		}
		path := filepath.Join(t.TempDir(), name+".token")
		if err := os.WriteFile(path, []byte(r.stdout), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	viewer, operator := tokenFile("dash", "viewer"), tokenFile("deployer", "operator")
	withToken := func(file string, args ...string) result {
		return pipit(t, 15*time.Second, append(args, "--state-dir", state, "--token-file", file)...)
	}
	if r := withToken(viewer, "status", "web"); r.code != 0 {
		t.Fatalf("a viewer's status: exit %d: %s", r.code, r.stderr)
	}
	if r := withToken(viewer, "deploy", "web", "--version", "v2", "--canary", sampleApp(t, "v2")); r.code != 1 || !strings.Contains(r.stderr, "needs operator") {
		t.Fatalf("a viewer's deploy: exit %d: %s", r.code, r.stderr)
	}
	if r := withToken(operator, "deploy", "web", "--version", "v2", "--canary", sampleApp(t, "v2"), "--reason", "release 2"); r.code != 0 {
		t.Fatalf("an operator's deploy: exit %d: %s", r.code, r.stderr)
	}
	if r := withToken(operator, "token", "list"); r.code != 1 || !strings.Contains(r.stderr, "needs admin") {
		t.Errorf("an operator's token list: exit %d: %s", r.code, r.stderr)
	}
	started := false
	for _, e := range d.history() {
		if e.Reason == "Started" {
			started = e.Actor == "deployer" && strings.Contains(e.Message, "release 2")
		}
	}
	if !started {
		t.Errorf("the history does not name the token deployer as the deploy's actor: %+v", d.history())
	}
	if r := pipit(t, 15*time.Second, "token", "list", "--state-dir", state); r.code != 0 || !strings.Contains(r.stdout, "deployer") || !strings.Contains(r.stdout, "operator") {
		t.Errorf("token list: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := pipit(t, 15*time.Second, "token", "revoke", "deployer", "--state-dir", state); r.code != 0 {
		t.Fatalf("revoke: exit %d: %s", r.code, r.stderr)
	}
	if r := withToken(operator, "pause", "web"); r.code != 1 || !strings.Contains(r.stderr, "rejected the token") {
		t.Errorf("a revoked token: exit %d: %s", r.code, r.stderr)
	}
	if r := pipit(t, 15*time.Second, "token", "create", "x", "--role", "root", "--state-dir", state); r.code != 2 {
		t.Errorf("a bad role: exit %d: %s", r.code, r.stderr)
	}
}
