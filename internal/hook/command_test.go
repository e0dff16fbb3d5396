package hook

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pipit-dev/pipit/api/v1alpha1"
)

// shellHook is a command hook running script with sh; the script gets dir
// as $1.
func shellHook(script, dir string) v1alpha1.WebhookSpec {
	return v1alpha1.WebhookSpec{
		Name: "cmd", Type: v1alpha1.HookPreRollout,
		Command: []string{"/bin/sh", "-c", script, "sh", dir},
	}
}

func TestCommandHookGetsPayloadAndEnv(t *testing.T) {
	dir := t.TempDir()
	spec := shellHook(`cat > "$1/stdin"; env | grep -E '^(PIPIT_|EXTRA=)' | sort > "$1/env"; echo all good`, dir)
	spec.Env = map[string]string{"EXTRA": "yes", "PIPIT_WEIGHT": "spoofed"}
	res := Runner{}.Run(context.Background(), spec, samplePayload())
	if !res.OK || res.Err != nil || res.Attempts != 1 {
		t.Fatalf("Run = %+v, want OK", res)
	}
	if res.Message != "all good" {
		t.Errorf("message %q, want the output when stderr is empty", res.Message)
	}

	var p Payload
	if err := json.Unmarshal(readFile(t, dir, "stdin"), &p); err != nil {
		t.Fatalf("stdin is not the JSON payload: %v", err)
	}
	if p.Name != "web" || p.Type != v1alpha1.HookPreRollout || p.Weight != 2.5 || p.Metadata["ticket"] != "OPS-7" {
		t.Errorf("payload on stdin = %+v", p)
	}
	env := string(readFile(t, dir, "env"))
	for _, want := range []string{
		"EXTRA=yes", "PIPIT_ROLLOUT=web", "PIPIT_NAMESPACE=shop", "PIPIT_PHASE=Progressing",
		"PIPIT_STEP=3", "PIPIT_WEIGHT=2.5", "PIPIT_VERSION=v2", "PIPIT_STABLE_VERSION=v1",
		"PIPIT_HOOK_NAME=cmd", "PIPIT_HOOK_TYPE=pre-rollout",
	} {
		if !strings.Contains(env, want+"\n") {
			t.Errorf("environment lacks %s:\n%s", want, env)
		}
	}
	if strings.Contains(env, "spoofed") {
		t.Errorf("the hook's env overrode a PIPIT_ variable:\n%s", env)
	}
}

func TestCommandHookNonZeroExitIsDefinitiveNo(t *testing.T) {
	dir := t.TempDir()
	res := Runner{}.Run(context.Background(), shellHook(`echo run >> "$1/runs"; echo "checks failed: 3 of 7" >&2; echo noise; exit 1`, dir), samplePayload())
	if res.OK || res.Err != nil || res.Attempts != 1 {
		t.Fatalf("Run = %+v, want a definitive no after one attempt", res)
	}
	if res.Message != "checks failed: 3 of 7" {
		t.Errorf("message %q, want standard error", res.Message)
	}
	if runs := strings.Count(string(readFile(t, dir, "runs")), "run"); runs != 1 {
		t.Errorf("command ran %d times, want once", runs)
	}
}

func TestCommandHookBoundsOutput(t *testing.T) {
	res := Runner{}.Run(context.Background(), shellHook(`head -c 1000000 /dev/zero | tr '\0' x >&2; exit 3`, t.TempDir()), samplePayload())
	if res.OK || len(res.Message) > MaxMessage || !strings.HasPrefix(res.Message, "xxx") {
		t.Fatalf("Run = OK %v, message of %d bytes; want a no with at most %d bytes", res.OK, len(res.Message), MaxMessage)
	}
}

func TestCommandHookTimeoutKillsProcessGroup(t *testing.T) {
	dir := t.TempDir()
	spec := shellHook(`echo $$ > "$1/shell"; sleep 60 & echo $! > "$1/child"; sleep 60`, dir)
	// Long enough for a loaded machine to start the shell and write the pid
	// files, which the check below needs.
	spec.Timeout = dur(time.Second)
	spec.Retries = ptr[int32](0)
	start := time.Now()
	res := Runner{}.Run(context.Background(), spec, samplePayload())
	if res.OK || res.Err == nil || !strings.Contains(res.Err.Error(), "killed after 1s") {
		t.Fatalf("Run = %+v, want a timeout", res)
	}
	if elapsed := time.Since(start); elapsed > 30*time.Second {
		t.Fatalf("Run took %s, the timeout was not honoured", elapsed)
	}
	assertGone(t, readPid(t, dir, "shell"))
	assertGone(t, readPid(t, dir, "child"))
}

func TestCommandHookRetriesTimeouts(t *testing.T) {
	spec := shellHook(`sleep 60`, t.TempDir())
	spec.Timeout = dur(100 * time.Millisecond)
	spec.Retries = ptr[int32](1)
	res := Runner{}.Run(context.Background(), spec, samplePayload())
	if res.OK || res.Err == nil || res.Attempts != 2 || !strings.Contains(res.Err.Error(), "killed after 100ms") {
		t.Fatalf("Run = %+v, want two timed out attempts", res)
	}
}

func TestCommandHookLeavesNothingBehind(t *testing.T) {
	dir := t.TempDir()
	// The background child keeps the output pipe open after the shell exits.
	res := Runner{}.Run(context.Background(), shellHook(`sleep 60 & echo $! > "$1/child"; echo started`, dir), samplePayload())
	if !res.OK || res.Err != nil || res.Message != "started" {
		t.Fatalf("Run = %+v, want OK with the shell's output", res)
	}
	assertGone(t, readPid(t, dir, "child"))
}

func TestCommandHookThatCannotStart(t *testing.T) {
	spec := v1alpha1.WebhookSpec{Name: "x", Type: v1alpha1.HookRollout, Command: []string{filepath.Join(t.TempDir(), "missing")}}
	res := Runner{}.Run(context.Background(), spec, samplePayload())
	if res.OK || res.Err == nil || res.Attempts != 1 || !errors.Is(res.Err, os.ErrNotExist) {
		t.Fatalf("Run = %+v, want a start error without retries", res)
	}
}

func readFile(t *testing.T, dir, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func readPid(t *testing.T, dir, name string) int {
	t.Helper()
	pid, err := strconv.Atoi(strings.TrimSpace(string(readFile(t, dir, name))))
	if err != nil || pid <= 1 {
		t.Fatalf("pid file %s: %q", name, readFile(t, dir, name))
	}
	return pid
}

// assertGone waits a little for pid to be dead: gone, or a zombie waiting
// for a reaper that is not us.
func assertGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if !alive(pid) {
			return
		}
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL) // do not leave it to the next test
			t.Fatalf("process %d outlived its hook", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func alive(pid int) bool {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// The state follows the parenthesised command name: "pid (comm) S ...".
	rest := string(stat[strings.LastIndexByte(string(stat), ')')+1:])
	fields := strings.Fields(rest)
	return len(fields) > 0 && fields[0] != "Z" && fields[0] != "X"
}
