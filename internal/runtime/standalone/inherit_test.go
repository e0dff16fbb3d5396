package standalone

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"
)

// systemdChildEnv makes the test binary play a daemon started by systemd
// with one socket: it reports what SystemdSockets found, then answers one
// connection on it.
const systemdChildEnv = "PIPIT_TEST_SYSTEMD_CHILD"

// runSystemdChild is the child's part. systemd sets LISTEN_PID to the
// pid it forked; the test cannot know it before the start, so the child
// fills it in, and the parse is what is under test.
func runSystemdChild() {
	os.Setenv(envListenPID, strconv.Itoa(os.Getpid()))
	socks, err := SystemdSockets()
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	fmt.Printf("%d env=%q\n", len(socks), os.Getenv(envListenFDs)+os.Getenv(envListenPID))
	for _, s := range socks {
		fmt.Printf("%s %s\n", s.Name, s.Listener.Addr())
	}
	if len(socks) == 1 {
		if c, err := socks[0].Listener.Accept(); err == nil {
			io.WriteString(c, "served by the activated socket\n")
			c.Close()
		}
	}
}

func listenLoopback(t *testing.T) *net.TCPListener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln.(*net.TCPListener)
}

// TestSystemdSocketActivation: a socket passed as descriptor 3 with
// LISTEN_FDS and LISTEN_FDNAMES is found, named, served, and the variables
// are gone from the environment the daemon's processes inherit.
func TestSystemdSocketActivation(t *testing.T) {
	ln := listenLoopback(t)
	f, err := ln.File()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), systemdChildEnv+"=1", envListenFDs+"=1", envListenFDNames+"=web")
	cmd.ExtraFiles = []*os.File{f}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	r := bufio.NewReader(out)
	first, _ := r.ReadString('\n')
	second, _ := r.ReadString('\n')
	if first != "1 env=\"\"\n" || second != "web "+ln.Addr().String()+"\n" {
		t.Fatalf("child saw %q %q, want one socket named web on %s and no LISTEN_ variables left", first, second, ln.Addr())
	}
	ln.Close() // only the child's copy serves now
	c, err := net.DialTimeout("tcp", ln.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if got, _ := bufio.NewReader(c).ReadString('\n'); got != "served by the activated socket\n" {
		t.Fatalf("answer %q", got)
	}
}

// TestSystemdSocketsForAnotherProcess: variables meant for another pid
// (a parent that did not unset them) are dropped, and nothing is taken.
func TestSystemdSocketsForAnotherProcess(t *testing.T) {
	t.Setenv(envListenPID, strconv.Itoa(os.Getppid()))
	t.Setenv(envListenFDs, "1")
	socks, err := SystemdSockets()
	if err != nil || len(socks) != 0 {
		t.Fatalf("got %d sockets, err %v; want none", len(socks), err)
	}
	if _, set := os.LookupEnv(envListenFDs); set {
		t.Error("LISTEN_FDS is still set")
	}
}

// TestSystemdSocketsRefuseANonListeningSocket: a descriptor that is not a
// listening TCP socket is an error naming it, not a listener that fails.
func TestSystemdSocketsRefuseANonListeningSocket(t *testing.T) {
	for name, open := range map[string]func(t *testing.T) *os.File{
		"connected": func(t *testing.T) *os.File {
			ln := listenLoopback(t)
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			f, _ := c.(*net.TCPConn).File()
			return f
		},
		"file": func(t *testing.T) *os.File {
			f, err := os.Open(os.DevNull)
			if err != nil {
				t.Fatal(err)
			}
			return f
		},
	} {
		t.Run(name, func(t *testing.T) {
			f := open(t)
			defer f.Close()
			if _, err := listenerFromFD(int(f.Fd())); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

// inheritedMatches are listen addresses and the bound address of the
// inherited socket each should take, or "" for none.
var inheritedMatches = []struct{ addr, want string }{
	{"127.0.0.1:0", "127.0.0.1:41000"},   // a ":0" address only by name
	{"web.local:80", "10.1.1.1:80"},      // by name, before any address
	{":9301", "0.0.0.0:9301"},            // every address matches the unspecified IP
	{"127.0.0.1:9302", "127.0.0.1:9302"}, // by address
	{"127.0.0.2:9302", ""},               // another IP, same port
	{"127.0.0.1:9303", ""},               // nothing there
	{"web.local:80", ""},                 // taken already
}

// TestInheritedSocketMatching: each inherited socket goes to the listen
// address it was named for, else to the one it is bound to, once; the
// rest are closed.
func TestInheritedSocketMatching(t *testing.T) {
	fake := func(name, addr string) InheritedSocket {
		a, _ := net.ResolveTCPAddr("tcp", addr)
		return InheritedSocket{Name: name, Listener: fakeListener{a}}
	}
	spare := listenLoopback(t)
	set := &inheritedSockets{free: []InheritedSocket{
		fake("127.0.0.1:0", "127.0.0.1:41000"), fake("web.local:80", "10.1.1.1:80"), fake("", "0.0.0.0:9301"),
		fake("", "127.0.0.1:9302"), {Name: "spare", Listener: spare},
	}}
	for _, m := range inheritedMatches {
		got := ""
		if ln, ok := set.take(m.addr); ok {
			got = ln.Addr().String()
		}
		if got != m.want {
			t.Errorf("%s took %q, want %q", m.addr, got, m.want)
		}
	}
	set.closeUnclaimed(slog.New(slog.DiscardHandler))
	if _, err := spare.Accept(); err == nil {
		t.Error("the unclaimed socket still accepts")
	}
}

// fakeListener only has an address: matching never accepts.
type fakeListener struct{ addr net.Addr }

func (fakeListener) Accept() (net.Conn, error) { return nil, net.ErrClosed }
func (fakeListener) Close() error              { return nil }
func (l fakeListener) Addr() net.Addr          { return l.addr }
