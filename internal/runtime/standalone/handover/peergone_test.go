//go:build linux

package handover

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// prompt bounds how long a side may take to notice its peer is gone:
// generous for a loaded machine, far under DefaultTimeout.
const prompt = 5 * time.Second

// peerGoneCases close one side once both are through the stages before
// at, and call the other side's method for at. Writes meet a peer that
// is already gone; reads are waiting when it goes.
var peerGoneCases = []struct {
	name    string
	at      stage
	oldGoes bool // the old side closes; otherwise the new one
}{
	{"old closes after hello", stageFiles, true},       // new: Files waits
	{"new closes after hello", stageFiles, false},      // old: SendFiles
	{"old closes after files", stageReleased, true},    // new: AwaitReleased waits
	{"new closes after files", stageReleased, false},   // old: Released
	{"old closes after released", stageServing, true},  // new: Serving
	{"new closes before serving", stageServing, false}, // old: AwaitServing waits
}

func TestAPeerClosingAtEachStageFailsTheOtherSidePromptly(t *testing.T) {
	for _, tc := range peerGoneCases {
		t.Run(tc.name, func(t *testing.T) {
			dir := stateDir(t)
			o, in := handOver(t, listen(t, dir), dir)
			advance(t, o, in, tc.at)
			var peer interface{ Close() error } = in
			if tc.oldGoes {
				peer = o
			}
			reads := tc.oldGoes != (tc.at == stageServing)
			if reads {
				time.AfterFunc(50*time.Millisecond, func() { peer.Close() })
			} else {
				peer.Close()
			}
			start := time.Now()
			err := callAt(t, o, in, tc.at, !tc.oldGoes)
			if !errors.Is(err, ErrPeerGone) || !strings.Contains(err.Error(), "stage "+tc.at.String()+":") {
				t.Fatalf("got %v, want ErrPeerGone at stage %s", err, tc.at)
			}
			if took := time.Since(start); took > prompt {
				t.Fatalf("the peer's going took %v to notice", took)
			}
			// The failure is the hand-over's: every later call returns it.
			if again := callAt(t, o, in, tc.at, !tc.oldGoes); again != err {
				t.Fatalf("called again: %v, want %v", again, err)
			}
		})
	}
}

// advance runs both sides through the stages before at.
func advance(t *testing.T, o *Outgoing, in *Incoming, at stage) {
	t.Helper()
	if at > stageFiles {
		ctx := testContext(t)
		if err := o.SendFiles(ctx, pipes(t, 1), nil); err != nil {
			t.Fatal(err)
		}
		files, _, err := in.Files(ctx)
		if err != nil {
			t.Fatal(err)
		}
		closeAll(files)
	}
	if at > stageReleased {
		ctx := testContext(t)
		if err := o.Released(ctx); err != nil {
			t.Fatal(err)
		}
		if err := in.AwaitReleased(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

// callAt calls the method of stage at, on the old side or the new one.
func callAt(t *testing.T, o *Outgoing, in *Incoming, at stage, old bool) error {
	ctx := testContext(t)
	switch {
	case at == stageFiles && old:
		return o.SendFiles(ctx, pipes(t, 1), []byte("meta"))
	case at == stageFiles:
		_, _, err := in.Files(ctx)
		return err
	case at == stageReleased && old:
		return o.Released(ctx)
	case at == stageReleased:
		return in.AwaitReleased(ctx)
	case at == stageServing && old:
		return o.AwaitServing(ctx)
	default:
		return in.Serving(ctx)
	}
}

// TestAKilledNewDaemonFailsTheOldSidePromptly runs the new side in a
// child process and kills it while the old side waits for it to serve.
func TestAKilledNewDaemonFailsTheOldSidePromptly(t *testing.T) {
	dir := stateDir(t)
	l := listen(t, dir)
	ctx := testContext(t)
	child := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestHelperNewSide$")
	child.Env = append(os.Environ(), "HANDOVER_HELPER_DIR="+dir)
	child.Stderr = os.Stderr
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer child.Wait()
	defer child.Process.Kill()
	o, err := l.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	if err := o.SendFiles(ctx, pipes(t, 2), []byte("meta")); err != nil {
		t.Fatal(err)
	}
	if err := o.Released(ctx); err != nil {
		t.Fatal(err)
	}
	time.AfterFunc(100*time.Millisecond, func() { child.Process.Kill() })
	start := time.Now()
	err = o.AwaitServing(ctx)
	if !errors.Is(err, ErrPeerGone) || !strings.Contains(err.Error(), "stage serving:") {
		t.Fatalf("got %v, want ErrPeerGone at stage serving", err)
	}
	if took := time.Since(start); took > prompt {
		t.Fatalf("the new daemon's death took %v to notice", took)
	}
}

// TestHelperNewSide is the new daemon of the test above, in a child
// process: it takes the hand-over up to released and waits to be killed.
func TestHelperNewSide(t *testing.T) {
	dir := os.Getenv("HANDOVER_HELPER_DIR")
	if dir == "" {
		t.Skip("the new side of TestAKilledNewDaemonFailsTheOldSidePromptly, run by it")
	}
	ctx := testContext(t)
	in, err := Dial(ctx, dir, Hello{PID: os.Getpid(), Version: "child"})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := in.Files(ctx); err != nil {
		t.Fatal(err)
	}
	if err := in.AwaitReleased(ctx); err != nil {
		t.Fatal(err)
	}
	<-ctx.Done()
}
