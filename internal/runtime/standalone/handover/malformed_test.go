//go:build linux

package handover

import (
	"errors"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/pipit-dev/pipit/internal/testenv/nettest"
)

// rawFrame is what a misbehaving old side sends: bytes, with fds pipes'
// ends attached.
type rawFrame struct {
	data string
	fds  int
}

var validEmptyFiles = rawFrame{framed(`{"kind":"files"}`), 0}

// malformedCases are what a broken old side sends after accepting; the
// new side's call at stage at must fail with want, and every descriptor
// that came with the frames must be closed.
var malformedCases = []struct {
	name   string
	frames []rawFrame
	hangUp bool // the old side closes after the frames
	at     stage
	want   error
}{
	{"oversize length", []rawFrame{{sized(maxFrame+1, `{"kind":"files"}`), 2}}, false, stageFiles, ErrProtocol},
	{"zero length", []rawFrame{{sized(0, ""), 2}}, false, stageFiles, ErrProtocol},
	{"bad JSON", []rawFrame{{framed(`{"kind":"files","names":["a","b"`), 2}}, false, stageFiles, ErrProtocol},
	{"JSON and more", []rawFrame{{framed(`{"kind":"files","names":["a","b"]} {}`), 2}}, false, stageFiles, ErrProtocol},
	{"unknown field", []rawFrame{{framed(`{"kind":"files","names":["a","b"],"mode":"x"}`), 2}}, false, stageFiles, ErrProtocol},
	{"wrong kind", []rawFrame{{framed(`{"kind":"serving"}`), 0}}, false, stageFiles, ErrProtocol},
	{"unknown kind", []rawFrame{{framed(`{"kind":"bye"}`), 0}}, false, stageFiles, ErrProtocol},
	{"fewer names than descriptors", []rawFrame{{framed(`{"kind":"files","names":["a"]}`), 2}}, false, stageFiles, ErrProtocol},
	{"more names than descriptors", []rawFrame{{framed(`{"kind":"files","names":["a","b","c"]}`), 2}}, false, stageFiles, ErrProtocol},
	{"descriptors on released", []rawFrame{validEmptyFiles, {framed(`{"kind":"released"}`), 2}}, false, stageReleased, ErrProtocol},
	{"more descriptors than a frame carries", []rawFrame{{framed(`{"kind":"files","names":["a"]}`), 2 * 60}}, false, stageFiles, ErrProtocol},
	{"metadata before the last batch", []rawFrame{{framed(`{"kind":"files","names":["a","b"],"more":true,"meta":"eA=="}`), 2}}, false, stageFiles, ErrProtocol},
	{"a name again in a later batch", []rawFrame{
		{framed(`{"kind":"files","names":["a","b"],"more":true}`), 2},
		{framed(`{"kind":"files","names":["c","a"]}`), 2},
	}, false, stageFiles, ErrProtocol},
	{"truncated frame", []rawFrame{{sized(100, `{"kind":"files","names":["a","b"]`), 2}}, true, stageFiles, ErrPeerGone},
	{"hang-up after a batch", []rawFrame{{framed(`{"kind":"files","names":["a","b"],"more":true}`), 2}}, true, stageFiles, ErrPeerGone},
}

func TestMalformedFramesAreErrorsAndLeakNoDescriptor(t *testing.T) {
	for _, tc := range malformedCases {
		t.Run(tc.name, func(t *testing.T) {
			dir := stateDir(t)
			accepted := fakeOldSide(t, dir)
			in, err := Dial(testContext(t), dir, Hello{PID: os.Getpid()})
			if err != nil {
				t.Fatal(err)
			}
			defer in.Close()
			old := <-accepted
			before := openFDs(t)
			for _, f := range tc.frames {
				sendRaw(t, old, f)
			}
			if tc.hangUp {
				old.Close()
				before--
			}
			if tc.at == stageReleased {
				if _, _, err := in.Files(testContext(t)); err != nil {
					t.Fatal(err)
				}
			}
			err = callAt(t, nil, in, tc.at, false)
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), "stage "+tc.at.String()+":") {
				t.Fatalf("got %v, want %v at stage %s", err, tc.want, tc.at)
			}
			if after := openFDs(t); after != before {
				t.Fatalf("%d descriptors open before the frames, %d after", before, after)
			}
		})
	}
}

// fakeOldSide listens on dir's socket path and accepts one hand-over as
// the old side would, up to the accepted frame, then leaves the
// connection to the test.
func fakeOldSide(t *testing.T, dir string) <-chan *net.UnixConn {
	t.Helper()
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: SocketPath(dir), Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan *net.UnixConn, 1)
	go func() {
		c, err := ln.AcceptUnix()
		ln.Close()
		if err != nil {
			t.Error(err)
			close(accepted)
			return
		}
		t.Cleanup(func() { c.Close() })
		if _, _, err := (wire{c}).readFrame(testContext(t), kindHello); err != nil {
			t.Error(err)
		}
		sendRaw(t, c, rawFrame{framed(`{"kind":"accepted"}`), 0})
		accepted <- c
	}()
	return accepted
}

// sendRaw sends f, with the ends of f.fds/2 fresh pipes attached, and
// closes its own ends.
func sendRaw(t *testing.T, c *net.UnixConn, f rawFrame) {
	t.Helper()
	var oob []byte
	if f.fds > 0 {
		files := pipes(t, f.fds/2)
		fds := make([]int, len(files))
		for i, p := range files {
			fds[i] = int(p.File.Fd())
		}
		oob = syscall.UnixRights(fds...)
		defer closeAll(files)
	}
	if _, _, err := c.WriteMsgUnix([]byte(f.data), oob, nil); err != nil {
		t.Fatal(err)
	}
}

func TestAMalformedHelloIsRefusedAndLeaksNoDescriptor(t *testing.T) {
	dir := stateDir(t)
	listen(t, dir)
	before := openFDs(t)
	c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: SocketPath(dir), Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	sendRaw(t, c, rawFrame{framed(`{"kind":"hello","pid":7}`), 2})
	m, _, err := (wire{c}).readFrame(testContext(t), kindRefused)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(m.Reason, "2 descriptors attached, want 0") {
		t.Fatalf("refused because %q", m.Reason)
	}
	c.Close()
	nettest.Eventually(t, "the listener to close what it received", func() bool { return openFDs(t) == before })
}
