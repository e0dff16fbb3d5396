//go:build linux

package handover

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pipit-dev/pipit/internal/testenv/nettest"
)

// testTimeout bounds each test's hand-over; far under it, DefaultTimeout
// never fires in a passing test.
const testTimeout = 10 * time.Second

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// stateDir is a fresh state directory with a short path: t.TempDir's,
// named after the test, can be too long for a Unix socket.
func stateDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "ho")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func listen(t *testing.T, dir string) *Listener {
	t.Helper()
	l, err := Listen(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// handOver starts a hand-over on dir's listener l and returns both sides,
// accepted.
func handOver(t *testing.T, l *Listener, dir string) (*Outgoing, *Incoming) {
	t.Helper()
	ctx := testContext(t)
	type accepted struct {
		o   *Outgoing
		err error
	}
	got := make(chan accepted, 1)
	go func() {
		o, err := l.Accept(ctx)
		got <- accepted{o, err}
	}()
	in, err := Dial(ctx, dir, Hello{PID: os.Getpid(), Version: "v-new"})
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { in.Close() })
	a := <-got
	if a.err != nil {
		t.Fatalf("Accept: %v", a.err)
	}
	t.Cleanup(func() { a.o.Close() })
	if h := a.o.Hello(); h.PID != os.Getpid() || h.Version != "v-new" {
		t.Fatalf("the old side heard %+v", h)
	}
	return a.o, in
}

// finish runs the stages after files on both sides.
func finish(t *testing.T, o *Outgoing, in *Incoming) {
	t.Helper()
	ctx := testContext(t)
	if err := o.Released(ctx); err != nil {
		t.Fatalf("Released: %v", err)
	}
	if err := in.AwaitReleased(ctx); err != nil {
		t.Fatalf("AwaitReleased: %v", err)
	}
	if err := in.Serving(ctx); err != nil {
		t.Fatalf("Serving: %v", err)
	}
	if err := o.AwaitServing(ctx); err != nil {
		t.Fatalf("AwaitServing: %v", err)
	}
}

// openFDs counts this process's open descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}

func TestHandsOverATCPListenerWithoutRefusingAConnection(t *testing.T) {
	dir := stateDir(t)
	o, in := handOver(t, listen(t, dir), dir)
	ctx := testContext(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	lf, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	early := dialTCP(t, addr) // waits in the backlog through the hand-over
	if err := o.SendFiles(ctx, []NamedFile{{Name: "listener:proxy", File: lf}}, []byte(`{"gen":2}`)); err != nil {
		t.Fatalf("SendFiles: %v", err)
	}
	// The old side closes its own copies before the new side accepts.
	lf.Close()
	ln.Close()
	files, meta, err := in.Files(ctx)
	if err != nil {
		t.Fatalf("Files: %v", err)
	}
	if len(files) != 1 || files[0].Name != "listener:proxy" || string(meta) != `{"gen":2}` {
		t.Fatalf("got %v and meta %q", files, meta)
	}
	nl, err := net.FileListener(files[0].File)
	files[0].File.Close()
	if err != nil {
		t.Fatal(err)
	}
	defer nl.Close()
	late := dialTCP(t, addr)
	finish(t, o, in)
	for _, client := range []net.Conn{early, late} {
		echoOnce(t, nl, client)
	}
}

func dialTCP(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, testTimeout)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// echoOnce accepts a connection on ln and checks that what client sends
// arrives there.
func echoOnce(t *testing.T, ln net.Listener, client net.Conn) {
	t.Helper()
	if _, err := client.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	ln.(*net.TCPListener).SetDeadline(time.Now().Add(testTimeout))
	c, err := ln.Accept()
	if err != nil {
		t.Fatalf("the new side's accept: %v", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(testTimeout))
	buf := make([]byte, 4)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("the new side read %q, %v", buf, err)
	}
}

func TestPasses300NamedDescriptorsInOrderCloseOnExec(t *testing.T) {
	dir := stateDir(t)
	o, in := handOver(t, listen(t, dir), dir)
	ctx := testContext(t)
	before := openFDs(t)
	sent := pipes(t, 150)
	if err := o.SendFiles(ctx, sent, nil); err != nil {
		t.Fatalf("SendFiles: %v", err)
	}
	got, meta, err := in.Files(ctx)
	if err != nil {
		t.Fatalf("Files: %v", err)
	}
	if len(got) != len(sent) || meta != nil {
		t.Fatalf("got %d descriptors and meta %q, want %d and none", len(got), meta, len(sent))
	}
	for i, f := range got {
		if f.Name != sent[i].Name {
			t.Fatalf("descriptor %d is %q, want %q", i, f.Name, sent[i].Name)
		}
		if !closeOnExec(t, f.File) {
			t.Errorf("descriptor %d (%s) is not close-on-exec", i, f.Name)
		}
	}
	// Each received write end feeds the read end sent beside it.
	for i := 0; i < len(got); i += 2 {
		if _, err := got[i+1].File.Write([]byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
		b := make([]byte, 1)
		if _, err := sent[i].File.Read(b); err != nil || b[0] != byte(i) {
			t.Fatalf("pipe %d read %v, %v", i/2, b, err)
		}
	}
	finish(t, o, in)
	closeAll(sent)
	closeAll(got)
	if after := openFDs(t); after != before {
		t.Fatalf("%d descriptors open before, %d after", before, after)
	}
}

// pipes opens n pipes, named pipe-N-r and pipe-N-w, read end first.
func pipes(t *testing.T, n int) []NamedFile {
	t.Helper()
	var files []NamedFile
	for i := range n {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		name := fmt.Sprintf("pipe-%03d", i)
		files = append(files, NamedFile{Name: name + "-r", File: r}, NamedFile{Name: name + "-w", File: w})
	}
	t.Cleanup(func() { closeAll(files) })
	return files
}

func closeAll(files []NamedFile) {
	for _, f := range files {
		f.File.Close()
	}
}

func closeOnExec(t *testing.T, f *os.File) bool {
	t.Helper()
	rc, err := f.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var flags uintptr
	var errno syscall.Errno
	rc.Control(func(fd uintptr) {
		flags, _, errno = syscall.Syscall(syscall.SYS_FCNTL, fd, syscall.F_GETFD, 0)
	})
	if errno != 0 {
		t.Fatal(errno)
	}
	return flags&syscall.FD_CLOEXEC != 0
}

func TestSocketFileIsTheOwnersOnly(t *testing.T) {
	dir := stateDir(t)
	listen(t, dir)
	fi, err := os.Lstat(SocketPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket file mode %v, want a 0600 socket", fi.Mode())
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Fatalf("the state directory holds %v, want only the socket", entries)
	}
}

func TestListenReplacesAStaleSocket(t *testing.T) {
	dir := stateDir(t)
	// A daemon killed while listening leaves its socket file behind.
	dead, err := net.ListenUnix("unix", &net.UnixAddr{Name: SocketPath(dir), Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	dead.SetUnlinkOnClose(false)
	dead.Close()
	l := listen(t, dir)
	handOver(t, l, dir)
}

func TestListenReplacesOnlyASocket(t *testing.T) {
	dir := stateDir(t)
	if err := os.WriteFile(SocketPath(dir), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(dir, nil); err == nil || !strings.Contains(err.Error(), SocketPath(dir)+" is not a socket (mode -rw-------)") {
		t.Fatalf("Listen over a regular file: %v", err)
	}
}

func TestCloseLeavesTheSocketOfALaterListener(t *testing.T) {
	dir := stateDir(t)
	first := listen(t, dir)
	// The new daemon listens as soon as it holds the lock, while the old
	// one still has its listener open.
	second := listen(t, dir)
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	handOver(t, second, dir)
	if err := second.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(SocketPath(dir)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("after its own listener closed, the socket file: %v", err)
	}
}

func TestASecondDialDuringAHandOverIsRefused(t *testing.T) {
	dir := stateDir(t)
	l := listen(t, dir)
	o, _ := handOver(t, l, dir)
	ctx := testContext(t)
	_, err := Dial(ctx, dir, Hello{PID: 4242, Version: "v-other"})
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "in progress") {
		t.Fatalf("a second Dial: %v, want a refusal for a hand-over in progress", err)
	}
	// Once the first one is over, another may begin.
	o.Close()
	handOver(t, l, dir)
}

func TestDialWithoutADaemon(t *testing.T) {
	_, err := Dial(testContext(t), stateDir(t), Hello{PID: os.Getpid()})
	if !errors.Is(err, ErrNoListener) {
		t.Fatalf("Dial with no daemon: %v, want ErrNoListener", err)
	}
}

func TestStagesRunInOrder(t *testing.T) {
	dir := stateDir(t)
	o, in := handOver(t, listen(t, dir), dir)
	ctx := testContext(t)
	if err := o.Released(ctx); err == nil || !strings.Contains(err.Error(), "stage released out of order: the hand-over is at stage files") {
		t.Fatalf("Released before SendFiles: %v", err)
	}
	if err := in.Serving(ctx); err == nil || !strings.Contains(err.Error(), "out of order") {
		t.Fatalf("Serving before Files: %v", err)
	}
	// A call out of order is the caller's mistake: the hand-over goes on.
	if err := o.SendFiles(ctx, nil, nil); err != nil {
		t.Fatal(err)
	}
	if _, _, err := in.Files(ctx); err != nil {
		t.Fatal(err)
	}
	finish(t, o, in)
}

func TestClosingTheListenerRefusesAWaitingRequest(t *testing.T) {
	dir := stateDir(t)
	l := listen(t, dir)
	ctx := testContext(t)
	dialed := make(chan error, 1)
	go func() {
		_, err := Dial(ctx, dir, Hello{PID: os.Getpid()})
		dialed <- err
	}()
	// The request said hello and waits for an Accept that does not come.
	nettest.Eventually(t, "the request to be greeted", func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.active != nil
	})
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-dialed; !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "stopped taking hand-overs") {
		t.Fatalf("Dial while the listener closed: %v", err)
	}
	if _, err := l.Accept(ctx); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept after Close: %v", err)
	}
	if _, err := os.Lstat(SocketPath(dir)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("after Close, the socket file: %v", err)
	}
}

func TestACallEndsWithItsContext(t *testing.T) {
	dir := stateDir(t)
	o, in := handOver(t, listen(t, dir), dir)
	if err := o.SendFiles(testContext(t), nil, nil); err != nil {
		t.Fatal(err)
	}
	if _, _, err := in.Files(testContext(t)); err != nil {
		t.Fatal(err)
	}
	// The old side never says released.
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := in.AwaitReleased(ctx)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "stage released:") {
		t.Fatalf("AwaitReleased past its deadline: %v", err)
	}
	if took := time.Since(start); took > prompt {
		t.Fatalf("AwaitReleased took %v with a deadline of 100ms", took)
	}
	if err := o.Released(testContext(t)); err != nil {
		t.Fatal(err)
	}
	cancelled, cancel := context.WithCancel(t.Context())
	time.AfterFunc(50*time.Millisecond, cancel)
	if err := o.AwaitServing(cancelled); !errors.Is(err, context.Canceled) {
		t.Fatalf("AwaitServing cancelled: %v", err)
	}
}

// TestDrainedEndsTheHandOver: the old side says it drained, or goes away,
// and either way the new side's AwaitDrained returns without an error;
// anything else at that stage is a protocol error.
func TestDrainedEndsTheHandOver(t *testing.T) {
	for _, tc := range []struct {
		name    string
		oldSide func(ctx context.Context, o *Outgoing) error
		wantErr bool
	}{
		{"said", func(ctx context.Context, o *Outgoing) error { return o.Drained(ctx) }, false},
		{"gone", func(context.Context, *Outgoing) error { return nil }, false},
		{"released again", func(ctx context.Context, o *Outgoing) error {
			return o.w.writeFrame(ctx, message{Kind: kindReleased}, nil)
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := stateDir(t)
			o, in := handOver(t, listen(t, dir), dir)
			ctx := testContext(t)
			if err := o.SendFiles(ctx, nil, nil); err != nil {
				t.Fatal(err)
			}
			if _, _, err := in.Files(ctx); err != nil {
				t.Fatal(err)
			}
			finish(t, o, in)
			if err := tc.oldSide(ctx, o); err != nil {
				t.Fatal(err)
			}
			o.Close()
			err := in.AwaitDrained(ctx)
			if (err != nil) != tc.wantErr || (err != nil && !errors.Is(err, ErrProtocol)) {
				t.Fatalf("AwaitDrained: %v, want an error: %v", err, tc.wantErr)
			}
		})
	}
}
