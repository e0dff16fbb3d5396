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

	"github.com/pipit-dev/pipit/internal/testenv/nettest"
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
	nettest.Eventually(t, "a place freed by a closed connection", func() bool {
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

// TestServerRequestsPerForwardedClient: behind a trusted proxy, the bound
// applies to each forwarded client's requests in flight (answered 429
// past it), on both paths, while other clients of the same proxy pass.
func TestServerRequestsPerForwardedClient(t *testing.T) {
	release := make(chan struct{})
	slow := newScriptedUpstream(t, func(r *http.Request) (string, bool, func(net.Conn)) {
		if r.URL.Path == "/slow" {
			<-release
		}
		return innocentAnswer(r), true, nil
	})
	p := newProxy(t, Config{Stable: Upstream{Version: "v1", URL: nettest.MustURL(t, "http://"+slow.ln.Addr().String())}})
	trust := []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}
	for name, h := range map[string]http.Handler{"fast": p, "net/http": http.HandlerFunc(p.ServeHTTP)} {
		t.Run(name, func(t *testing.T) {
			base := strings.TrimPrefix(serveWith(t, h, ServerConfig{MaxConnectionsPerClient: 2, TrustedProxies: trust}), "http://")
			send := func(path, client string) int {
				c := dialFrom(t, "127.0.0.2", base)
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: "+client+"\r\n\r\n")
				resp, err := http.ReadResponse(bufio.NewReader(c), nil)
				if err != nil {
					return 0
				}
				resp.Body.Close()
				return resp.StatusCode
			}
			done := make(chan int, 2)
			for range 2 {
				go func() { done <- send("/slow", "203.0.113.7") }()
			}
			nettest.Eventually(t, "two slow requests at the upstream", func() bool {
				n := 0
				for _, r := range slow.requests() {
					if strings.HasSuffix(r, "/slow") {
						n++
					}
				}
				return n >= 2
			})
			if code := send("/x", "203.0.113.7"); code != http.StatusTooManyRequests {
				t.Errorf("a third request in flight from one forwarded client: %d, want 429", code)
			}
			if code := send("/x", "203.0.113.8"); code != http.StatusOK {
				t.Errorf("another client of the trusted proxy: %d, want 200", code)
			}
			release <- struct{}{}
			release <- struct{}{}
			for range 2 {
				if code := <-done; code != http.StatusOK {
					t.Errorf("a slow request: %d", code)
				}
			}
			slow.mu.Lock()
			slow.seen = nil
			slow.mu.Unlock()
		})
	}
}
