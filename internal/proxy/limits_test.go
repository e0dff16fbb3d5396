package proxy

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// answers sends one request on c and reports whether an answer came
// within wait.
func answers(c net.Conn, wait time.Duration) bool {
	_ = c.SetDeadline(time.Now().Add(wait))
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		return false
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func TestServerConnectionsPerClient(t *testing.T) {
	up := newUpstream(t, "v1")
	p := newProxy(t, Config{Stable: up.upstream(t)})
	base := strings.TrimPrefix(serveWith(t, p, ServerConfig{MaxConnectionsPerClient: 3, TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.3/32")}}), "http://")

	var held []net.Conn
	for range 3 {
		c := dialFrom(t, "127.0.0.2", base)
		if !answers(c, 5*time.Second) {
			t.Fatal("a connection within the limit got no answer")
		}
		held = append(held, c)
	}
	if answers(dialFrom(t, "127.0.0.2", base), 2*time.Second) {
		t.Fatal("a fourth connection from the same client was served")
	}
	if !answers(dialFrom(t, "127.0.0.1", base), 5*time.Second) {
		t.Fatal("another client was refused")
	}
	for range 5 {
		if !answers(dialFrom(t, "127.0.0.3", base), 5*time.Second) {
			t.Fatal("a trusted proxy's connections were counted as one client's")
		}
	}
	held[0].Close()
	waitFor(t, "a place freed by a closed connection", func() bool {
		return answers(dialFrom(t, "127.0.0.2", base), time.Second)
	})
}

func TestServerMaxConnections(t *testing.T) {
	up := newUpstream(t, "v1")
	p := newProxy(t, Config{Stable: up.upstream(t)})
	base := strings.TrimPrefix(serveWith(t, p, ServerConfig{MaxConnections: 2}), "http://")

	first := dialFrom(t, "127.0.0.1", base)
	second := dialFrom(t, "127.0.0.2", base)
	for _, c := range []net.Conn{first, second} {
		if !answers(c, 5*time.Second) {
			t.Fatal("a connection within the limit got no answer")
		}
	}
	// The third waits in the kernel's backlog: connected, not served.
	third := dialFrom(t, "127.0.0.3", base)
	done := make(chan bool, 1)
	go func() { done <- answers(third, 10*time.Second) }()
	select {
	case <-done:
		t.Fatal("a connection past MaxConnections was served while the others were open")
	case <-time.After(300 * time.Millisecond):
	}
	first.Close()
	if !<-done {
		t.Fatal("the waiting connection was not served once a place was free")
	}
}
