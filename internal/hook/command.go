package hook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"syscall"
	"time"

	"github.com/pipit-dev/pipit/api/v1alpha1"
)

// waitDelay bounds how long a command's output is still read once it has
// exited or been killed: a child it left in the background may hold the
// pipes open.
const waitDelay = 500 * time.Millisecond

// runCommand makes one attempt at a command hook. The command runs in a
// process group of its own, which is killed once the command exits or times
// out, so that nothing it started outlives the attempt.
func runCommand(parent context.Context, s v1alpha1.WebhookSpec, p Payload, timeout time.Duration) attempt {
	body, err := json.Marshal(p)
	if err != nil {
		return attempt{err: fmt.Errorf("encoding payload: %w", err)}
	}
	ctx, cancel := context.WithTimeout(parent, timeout)
	defer cancel()

	name := s.Command[0]
	cmd := exec.CommandContext(ctx, name, s.Command[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return killGroup(cmd.Process.Pid) }
	cmd.WaitDelay = waitDelay
	cmd.Env = commandEnv(s, p)
	cmd.Stdin = bytes.NewReader(body)
	var stdout, stderr capped
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		return attempt{err: fmt.Errorf("starting %s: %w", name, err)}
	}
	_ = cmd.Wait() // the outcome is read from ProcessState below
	killGroup(cmd.Process.Pid)

	message := stderr.String()
	if len(bytes.TrimSpace(stderr.buf)) == 0 {
		message = stdout.String()
	}
	state := cmd.ProcessState
	switch {
	case state.Success():
		return attempt{ok: true, message: message}
	case state.Exited():
		return attempt{message: message}
	case parent.Err() != nil:
		return attempt{message: message, err: fmt.Errorf("%s: %w", name, context.Cause(parent)), retry: true}
	case ctx.Err() != nil:
		return attempt{message: message, err: fmt.Errorf("%s: killed after %s without exiting", name, timeout), retry: true}
	default:
		return attempt{message: message, err: fmt.Errorf("%s: %s", name, state), retry: true}
	}
}

// commandEnv is pipit's environment, then the hook's env, then the PIPIT_*
// variables, which therefore cannot be overridden by mistake.
func commandEnv(s v1alpha1.WebhookSpec, p Payload) []string {
	env := os.Environ()
	for _, k := range slices.Sorted(maps.Keys(s.Env)) {
		env = append(env, k+"="+s.Env[k])
	}
	return append(env,
		"PIPIT_ROLLOUT="+p.Name,
		"PIPIT_NAMESPACE="+p.Namespace,
		"PIPIT_PHASE="+p.Phase,
		"PIPIT_STEP="+strconv.Itoa(int(p.Step)),
		"PIPIT_WEIGHT="+strconv.FormatFloat(p.Weight, 'f', -1, 64),
		"PIPIT_VERSION="+p.Version,
		"PIPIT_STABLE_VERSION="+p.StableVersion,
		"PIPIT_HOOK_NAME="+s.Name,
		"PIPIT_HOOK_TYPE="+string(s.Type),
	)
}

// killGroup kills the process group led by pid. A group that is already
// gone is not an error.
func killGroup(pid int) error {
	if err := syscall.Kill(-pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return err
	}
	return nil
}

// capped keeps the first MaxMessage+1 bytes written to it and drops the
// rest, so that a chatty command cannot grow pipit's memory; one byte past
// the bound lets the message show that it was cut.
type capped struct{ buf []byte }

func (c *capped) Write(p []byte) (int, error) {
	if room := MaxMessage + 1 - len(c.buf); room > 0 {
		c.buf = append(c.buf, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

func (c *capped) String() string { return string(c.buf) }
