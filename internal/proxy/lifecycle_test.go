package proxy

import (
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pipit-dev/pipit/internal/testenv/nettest"
)

// TestProxyCloseWaitsForMirroredCopies: a copy held by a slow canary is
// cut short by Close, which returns only once it has ended.
func TestProxyCloseWaitsForMirroredCopies(t *testing.T) {
	gate := make(chan struct{})
	stable, canary := newRecordingUpstream(t, "v1", nil), newRecordingUpstream(t, "v2", gate)
	t.Cleanup(func() { close(gate) }) // before the servers close, which waits for handlers
	p, addr := mirrorProxy(t, stable, canary, mirrorSpec(100))
	if code, _ := post(t, addr, strings.NewReader("payload")); code != http.StatusOK {
		t.Fatalf("status %d", code)
	}
	nettest.Eventually(t, "the copy to reach the canary", func() bool { return canary.arrived.Load() == 1 })
	m := p.mirror
	p.Close()
	if n := len(m.slots); n != 0 {
		t.Fatalf("%d copies still in flight after Close", n)
	}
	if s := p.MirrorStats(); s.Canary.TransportErrors != 1 {
		t.Errorf("the copy cut short counted as %+v, want one transport error", s.Canary)
	}
	// A closed Proxy still serves, but copies nothing any more.
	if code, _ := post(t, addr, strings.NewReader("payload")); code != http.StatusOK {
		t.Fatalf("status %d after Close", code)
	}
	if n := len(m.slots); n != 0 {
		t.Fatalf("a copy started after Close")
	}
}

// TestProxyCloseWaitsForOnEject: the ejection callback runs on a
// goroutine of the Proxy's, which Close waits for.
func TestProxyCloseWaitsForOnEject(t *testing.T) {
	st := newUpstream(t, "v1")
	bad, _ := failing(t, http.StatusInternalServerError)
	entered, release, returned := make(chan struct{}), make(chan struct{}), make(chan struct{})
	c := Upstream{Version: "v2", URL: nettest.MustURL(t, bad.URL)}
	p := newProxy(t, Config{Stable: st.upstream(t), Canary: &c, Weight: 100 * 1000, OutlierFailures: 1,
		OnEject: func(string, string) {
			close(entered)
			<-release
		}})
	get(t, &http.Client{}, front(t, p))
	<-entered
	go func() {
		p.Close()
		close(returned)
	}()
	select {
	case <-returned:
		t.Fatal("Close returned while OnEject was running")
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	<-returned
}

// TestServerCloseWaitsForDispatch: a connection that sends nothing holds
// a dispatching goroutine, which Close cuts short and waits for.
func TestServerCloseWaitsForDispatch(t *testing.T) {
	p := newProxy(t, Config{Stable: newUpstream(t, "v1").upstream(t)})
	s, err := NewServer(p, ServerConfig{Logger: testLogger(t), ReadHeaderTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	nettest.Eventually(t, "the connection to be dispatched", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.dispatching) == 1
	})
	start := time.Now()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("Close took %v: it waited for the read header timeout", d)
	}
	s.mu.Lock()
	left := len(s.dispatching)
	s.mu.Unlock()
	if left != 0 {
		t.Errorf("%d dispatching goroutines outlived Close", left)
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		t.Errorf("Serve returned %v, want http.ErrServerClosed", err)
	}
}

// TestServeReturnsInnerServerFailure: an inner server that stops on its
// own stops the Server, and Serve says why.
func TestServeReturnsInnerServerFailure(t *testing.T) {
	p := newProxy(t, Config{Stable: newUpstream(t, "v1").upstream(t)})
	s, err := NewServer(p, ServerConfig{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	_ = s.std.Close() // net/http refuses to serve from now on
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	select {
	case err := <-served:
		if err == nil || !strings.Contains(err.Error(), "net/http server stopped") {
			t.Errorf("Serve returned %v, want the net/http server's failure", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve went on after its net/http server failed")
	}
	if err := s.Close(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		t.Errorf("Close: %v", err)
	}
}
