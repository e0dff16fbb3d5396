//go:build linux

package handover

import (
	"net"
	"os"
	"runtime"
	"strings"
	"syscall"
	"testing"
)

// nobody is the user the tests below act as on one thread.
const nobody = 65534

// asNobody runs fn on a thread of its own running as nobody. The thread
// is never unlocked, so it ends with fn and takes the uid with it.
func asNobody(t *testing.T, fn func()) {
	t.Helper()
	if os.Getuid() != 0 {
		t.Skip("needs root, to act as another user")
	}
	done := make(chan syscall.Errno, 1)
	go func() {
		runtime.LockOSThread()
		// Not syscall.Setresuid, which changes every thread.
		if _, _, errno := syscall.RawSyscall(syscall.SYS_SETRESUID, nobody, nobody, 0); errno != 0 {
			done <- errno
			return
		}
		fn()
		done <- 0
	}()
	if errno := <-done; errno != 0 {
		t.Fatalf("setresuid: %v", errno)
	}
}

func TestTheOldSideRefusesAnotherUser(t *testing.T) {
	dir := stateDir(t)
	listen(t, dir)
	// Open to all, as a misconfigured state directory would be: the
	// peer's uid is the last line of defence.
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(SocketPath(dir), 0o666); err != nil {
		t.Fatal(err)
	}
	var c *net.UnixConn
	var err error
	asNobody(t, func() {
		c, err = net.DialUnix("unix", nil, &net.UnixAddr{Name: SocketPath(dir), Net: "unix"})
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	m, _, err := (wire{c}).readFrame(testContext(t), kindRefused)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(m.Reason, "runs as uid 65534 and this daemon as uid 0: only the same user may hand over") {
		t.Fatalf("refused because %q", m.Reason)
	}
}

func TestTheNewSideRefusesADaemonOfAnotherUser(t *testing.T) {
	dir := stateDir(t)
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	var ln *net.UnixListener
	var err error
	asNobody(t, func() {
		ln, err = net.ListenUnix("unix", &net.UnixAddr{Name: SocketPath(dir), Net: "unix"})
	})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, err = Dial(testContext(t), dir, Hello{PID: os.Getpid()})
	if err == nil || !strings.Contains(err.Error(), "stage hello: pid") || !strings.Contains(err.Error(), "runs as uid 65534 and this daemon as uid 0") {
		t.Fatalf("Dial to a daemon of another user: %v", err)
	}
}
