package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// rssBytes is a process's resident memory, from /proc.
func rssBytes(t testing.TB, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmRSS in /proc status")
	return 0
}

// TestHostileBodiesDoNotGrowTheDaemon is the memory acceptance test: 300
// connections each announcing a 10 MiB body and sending one byte of it
// grow the daemon by less than 64 MB, and other users are answered all
// along. The attackers come from three loopback addresses, 100 each, so
// the per-client connection limit (256 by default) does not stop them
// first: the bound under test is the proxy's buffering.
func TestHostileBodiesDoNotGrowTheDaemon(t *testing.T) {
	stable := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "v1")
	}))
	defer stable.Close()
	listen := freePort(t)
	d := startUp(t, writeRollout(t, listen, stable.URL, "1h"), t.TempDir())
	pid := d.cmd.Process.Pid

	innocent := func() error {
		client := &http.Client{Timeout: 5 * time.Second}
		resp, err := client.Get("http://" + listen + "/")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	}
	for range 200 { // warm up: pools, buffers, the runtime's own
		if err := innocent(); err != nil {
			t.Fatal(err)
		}
	}
	before := rssBytes(t, pid)

	var attackers []net.Conn
	defer func() {
		for _, c := range attackers {
			c.Close()
		}
	}()
	for i := range 300 {
		dialer := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(2+i%3))}, Timeout: 5 * time.Second}
		c, err := dialer.Dial("tcp", listen)
		if err != nil {
			t.Fatal(err)
		}
		attackers = append(attackers, c)
		if _, err := io.WriteString(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10485760\r\n\r\nx"); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(time.Second) // the daemon reads what they sent

	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for range 50 {
		wg.Go(func() {
			if err := innocent(); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("another user was not answered while 300 bodies hung: %v", err)
	}
	during := rssBytes(t, pid)
	t.Logf("daemon RSS: %d MB before, %d MB with 300 hanging 10 MiB bodies", before>>20, during>>20)
	if grown := during - before; grown >= 64<<20 {
		t.Errorf("the daemon grew by %d MB, want less than 64 MB", grown>>20)
	}
}
