package cli

import (
	"os"
	"os/user"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/controlapi"
	"github.com/pipit-dev/pipit/internal/rollout"
)

func TestDeploy(t *testing.T) {
	t.Setenv("PIPIT_ACTOR", "ci-pipeline")
	f := newFakeBackend()
	dir := startDaemon(t, f)

	code, out, errOut := run(t, "deploy", "api", "--canary", "http://127.0.0.1:9009", "--version", "v8",
		"--reason", "release 8", "--state-dir", dir)
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if want := "api: Progressing, step 1/1 setWeight 10%, weight 0% (waiting for canary v8 to become healthy)\n"; out != want {
		t.Fatalf("output %q, want %q", out, want)
	}
	got := f.submitted[0]
	if got.Kind != rollout.CommandDeploy || !reflect.DeepEqual(*got.Canary, v1alpha1.VersionRef{Version: "v8", URL: "http://127.0.0.1:9009"}) ||
		got.Actor != controlapi.AdminName || got.Reason != "release 8" {
		t.Fatalf("daemon got %+v", got)
	}

	// Without --version the URL names the version.
	if code, _, errOut := run(t, "deploy", "web", "--canary", "https://127.0.0.1:9010/", "--state-dir", dir); code != ExitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if c := f.submitted[1].Canary; c.Version != "https://127.0.0.1:9010/" || c.URL != c.Version {
		t.Fatalf("canary %+v", c)
	}

	// A fleet: --canary once per machine, the first naming the version.
	if code, _, errOut := run(t, "deploy", "web", "--canary", "http://10.0.0.7:8080", "--canary", "http://10.0.0.8:8080", "--state-dir", dir); code != ExitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	fleet := v1alpha1.VersionRef{Version: "http://10.0.0.7:8080", URLs: []string{"http://10.0.0.7:8080", "http://10.0.0.8:8080"}}
	if c := f.submitted[2].Canary; !reflect.DeepEqual(*c, fleet) {
		t.Fatalf("canary %+v, want %+v", c, fleet)
	}
}

func TestDeployProcess(t *testing.T) {
	f := newFakeBackend()
	dir := startDaemon(t, f)
	code, _, errOut := run(t, "deploy", "web", "--version", "v2", "--command", "pipit", "--arg", "sample-app",
		"--arg", "--listen=127.0.0.1:{{ .Port }}", "--env", "MODE=canary", "--env", "EMPTY=", "--replicas", "2", "--state-dir", dir)
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	want := &v1alpha1.ProcessSpec{Command: "pipit", Args: []string{"sample-app", "--listen=127.0.0.1:{{ .Port }}"},
		Env: map[string]string{"MODE": "canary", "EMPTY": ""}, Replicas: 2}
	if c := f.submitted[0].Canary; c.Version != "v2" || c.URL != "" || !reflect.DeepEqual(c.Process, want) {
		t.Fatalf("canary %+v, process %+v", c, c.Process)
	}

	file := filepath.Join(t.TempDir(), "v3.yaml")
	if err := os.WriteFile(file, []byte("command: ./server\nreadiness: {path: /ready, period: 1s}\nmemoryLimitBytes: 1000000\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := run(t, "deploy", "web", "--version", "v3", "--from", file, "--state-dir", dir); code != ExitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if p := f.submitted[1].Canary.Process; p == nil || p.Command != "./server" || p.Readiness.Path != "/ready" || *p.MemoryLimitBytes != 1000000 {
		t.Fatalf("process from file %+v", p)
	}
}

func TestDeployBadInput(t *testing.T) {
	f := newFakeBackend()
	dir := startDaemon(t, f)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no name", []string{"--canary", "http://127.0.0.1:9"}, "accepts 1 arg"},
		{"no canary", []string{"web"}, "--canary: a URL is required"},
		{"relative URL", []string{"web", "--canary", "/v2"}, "not an absolute http or https URL"},
		{"no scheme", []string{"web", "--canary", "127.0.0.1:9002"}, "--canary"},
		{"other scheme", []string{"web", "--canary", "ftp://127.0.0.1/"}, "not an absolute http or https URL"},
		{"no host", []string{"web", "--canary", "http:///x"}, "not an absolute http or https URL"},
		{"machine given twice", []string{"web", "--canary", "http://10.0.0.7:8080", "--canary", "http://10.0.0.7:8080"}, `"http://10.0.0.7:8080" is given twice`},
		{"bad machine", []string{"web", "--canary", "http://10.0.0.7:8080", "--canary", "10.0.0.8:8080"}, "--canary"},
		{"URL and command", []string{"web", "--canary", "http://127.0.0.1:9", "--command", "app"}, "give one of --canary, --command and --from"},
		{"process without version", []string{"web", "--command", "app"}, "--version: a label is required"},
		{"arg without command", []string{"web", "--canary", "http://127.0.0.1:9", "--arg", "x"}, "go with --command"},
		{"bad template", []string{"web", "--version", "v2", "--command", "app", "--arg", "{{ .Prot }}"}, "args[0]: "},
		{"bad env", []string{"web", "--version", "v2", "--command", "app", "--env", "MODE"}, `--env "MODE": want KEY=VALUE`},
		{"missing file", []string{"web", "--version", "v2", "--from", "/nonexistent/v2.yaml"}, "--from: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := run(t, append(append([]string{"deploy"}, tt.args...), "--state-dir", dir)...)
			if code != ExitBadInput || !strings.Contains(errOut, tt.want) || out != "" {
				t.Fatalf("exit %d, stdout %q, stderr %q; want exit 2 mentioning %q", code, out, errOut, tt.want)
			}
		})
	}
	if len(f.submitted) != 0 {
		t.Fatalf("bad input reached the daemon: %+v", f.submitted)
	}
}

func TestSteeringCommands(t *testing.T) {
	t.Setenv("PIPIT_ACTOR", "ann")
	f := newFakeBackend()
	dir := startDaemon(t, f)
	steps := []struct {
		args []string
		kind rollout.CommandKind
		want string
	}{
		{[]string{"pause", "web", "--reason", "lunch"}, rollout.CommandPause, "web: Paused, step 4/6 pause 10m0s, weight 25% (paused by admin)\n"},
		{[]string{"resume", "web"}, rollout.CommandResume, "web: Progressing, step 4/6 pause 10m0s, weight 25% (resumed)\n"},
		{[]string{"promote", "web"}, rollout.CommandPromote, "web: Progressing, step 5/6 setWeight 50%, weight 25% (resumed)\n"},
		{[]string{"abort", "web"}, rollout.CommandAbort, "web: Aborted, step 5/6 setWeight 50%, weight 0% (aborted by admin)\n"},
		{[]string{"retry", "web"}, rollout.CommandRetry, "web: Progressing, step 1/6 setWeight 5%, weight 0% (aborted by admin)\n"},
		{[]string{"promote", "web", "--full"}, rollout.CommandPromoteFull, "web: Promoting, step 6/6 done, weight 0% (promoting)\n"},
	}
	for i, s := range steps {
		code, out, errOut := run(t, append(s.args, "--state-dir", dir)...)
		if code != ExitOK || out != s.want {
			t.Fatalf("%v: exit %d, output %q, stderr %q; want %q", s.args, code, out, errOut, s.want)
		}
		if got := f.submitted[i]; got.Kind != s.kind || got.Actor != controlapi.AdminName {
			t.Fatalf("%v: daemon got %+v", s.args, got)
		}
	}
	if f.submitted[0].Reason != "lunch" {
		t.Fatalf("reason %q, want lunch", f.submitted[0].Reason)
	}
}

func TestRefusedCommandsExit1(t *testing.T) {
	f := newFakeBackend()
	dir := startDaemon(t, f)
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"pause", "api"}, ExitFailed, "pause api refused: cannot pause a rollout that is Idle"},
		{[]string{"resume", "web"}, ExitFailed, "resume web refused: cannot resume a rollout that is Progressing"},
		{[]string{"retry", "web"}, ExitFailed, "retry web refused"},
		{[]string{"promote", "api", "--full"}, ExitFailed, "promote-full api refused"},
		{[]string{"abort", "nope"}, ExitFailed, "not found"},
		{[]string{"abort"}, ExitBadInput, "accepts 1 arg"},
		{[]string{"pause", "web", "api"}, ExitBadInput, "accepts 1 arg"},
	}
	for _, tt := range tests {
		code, out, errOut := run(t, append(tt.args, "--state-dir", dir)...)
		if code != tt.code || !strings.Contains(errOut, tt.want) || out != "" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit %d mentioning %q", tt.args, code, out, errOut, tt.code, tt.want)
		}
	}
	if len(f.submitted) != 0 {
		t.Fatalf("refused commands were applied: %+v", f.submitted)
	}
}

func TestActorDefaultsToTheUser(t *testing.T) {
	t.Setenv("PIPIT_ACTOR", "")
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	if got := actor(); got != u.Username {
		t.Fatalf("actor() = %q, want %q", got, u.Username)
	}
	t.Setenv("PIPIT_ACTOR", "deploy-bot")
	if got := actor(); got != "deploy-bot" {
		t.Fatalf("actor() = %q, want deploy-bot", got)
	}
}

func TestHelpOfEveryRolloutVerb(t *testing.T) {
	for _, verb := range []string{"status", "get", "deploy", "promote", "abort", "pause", "resume", "retry", "history"} {
		code, out, _ := run(t, verb, "--help")
		if code != ExitOK || !strings.Contains(out, "Examples:") || !strings.Contains(out, "--state-dir") ||
			!strings.Contains(out, "--api") || !strings.Contains(out, "--token-file") {
			t.Errorf("%s --help: exit %d\n%s", verb, code, out)
		}
	}
}

// TestFlagsBeforeTheVerb: the flags that pick a daemon or a cluster may
// come before the verb, as kubectl's do, and reach the verb; where the
// verb has no such flag, or it is also given after the verb, the command
// line is refused.
func TestFlagsBeforeTheVerb(t *testing.T) {
	f := newFakeBackend()
	dir := startDaemon(t, f)
	if code, _, errOut := run(t, "--state-dir", dir, "pause", "web", "--reason", "dashboards"); code != ExitOK {
		t.Fatalf("--state-dir before the verb: exit %d: %s", code, errOut)
	}
	if len(f.submitted) != 1 || f.submitted[0].Kind != rollout.CommandPause {
		t.Fatalf("daemon got %+v, want one pause", f.submitted)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-n", "shop", "--kube", "--kubeconfig", filepath.Join(dir, "missing"), "status", "web"}, "kubeconfig"},
		{[]string{"--kube", "up", "-f", "web.yaml"}, "--kube does not go with pipit up"},
		{[]string{"-n", "a", "status", "-n", "b", "web"}, "--namespace is given both before and after status"},
		{[]string{"--state-dir", dir, "deplyo", "web"}, `unknown command "deplyo" for "pipit"; did you mean deploy?`},
	} {
		code, _, errOut := run(t, tc.args...)
		if code != ExitBadInput || !strings.Contains(errOut, tc.want) {
			t.Errorf("pipit %s: exit %d, %q; want %d naming %q", strings.Join(tc.args, " "), code, errOut, ExitBadInput, tc.want)
		}
	}
	if len(f.submitted) != 1 {
		t.Errorf("a refused command line reached the daemon: %+v", f.submitted)
	}
}
