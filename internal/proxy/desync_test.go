package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pipit-dev/pipit/internal/testenv/nettest"
)

// The desync regression suite: a misbehaving upstream, or a client whose
// request frames ambiguously, must never make the proxy hand one user's
// answer to another. Every case runs on the fast path and on the net/http
// path (a Server of a handler without a fast path).

// smuggledAnswer is what a misbehaving upstream sends that nobody asked
// for; no innocent client may ever read it.
const smuggledAnswer = "HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nSMUGGLED"

// scriptedUpstream is an HTTP/1.1 server that answers each request with the
// bytes its script returns, written as they are, and logs the requests it
// parsed. Requests are read with Go's parser; a script may leave a body
// unread, so that its bytes are parsed as the next request, as a careless
// server does.
type scriptedUpstream struct {
	ln     net.Listener
	script func(r *http.Request) (answer string, readBody bool, after func(net.Conn))

	mu   sync.Mutex
	seen []string // "METHOD target" of each request parsed
}

func newScriptedUpstream(t *testing.T, script func(r *http.Request) (string, bool, func(net.Conn))) *scriptedUpstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &scriptedUpstream{ln: ln, script: script}
	var wg sync.WaitGroup
	var conns sync.Map // every connection accepted, closed at the end
	t.Cleanup(func() {
		// Closing the connections ends their serve loops at once, rather
		// than when a peer that stays (an idle pooled connection)
		// lets the read deadline pass.
		ln.Close()
		conns.Range(func(c, _ any) bool { c.(net.Conn).Close(); return true })
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Store(c, true)
			wg.Go(func() { u.serve(c) })
		}
	})
	return u
}

func (u *scriptedUpstream) serve(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	for {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		r, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		u.mu.Lock()
		u.seen = append(u.seen, r.Method+" "+r.RequestURI)
		u.mu.Unlock()
		answer, readBody, after := u.script(r)
		if readBody {
			_, _ = io.Copy(io.Discard, r.Body)
		}
		if _, err := io.WriteString(c, answer); err != nil {
			return
		}
		if after != nil {
			after(c)
		}
		if r.Close {
			return
		}
	}
}

func (u *scriptedUpstream) requests() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.seen...)
}

// innocentAnswer is the upstream's answer to an innocent request: its own
// target, so that a client can tell its answer from anyone else's.
func innocentAnswer(r *http.Request) string {
	return fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(r.RequestURI), r.RequestURI)
}

// misbehaving is the upstream of the response-side cases: innocent
// requests (/innocent-N) are answered properly, the others as the case
// named by their path misbehaves.
func misbehaving(r *http.Request) (string, bool, func(net.Conn)) {
	switch r.URL.Path {
	case "/length-then-more":
		return "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello" + smuggledAnswer, true, nil
	case "/more-later":
		return "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", true, func(c net.Conn) {
			time.Sleep(50 * time.Millisecond)
			_, _ = io.WriteString(c, smuggledAnswer)
		}
	case "/no-content-then-more":
		return "HTTP/1.1 204 No Content\r\n\r\n" + smuggledAnswer, true, nil
	case "/not-modified-then-more":
		return "HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n" + smuggledAnswer, true, nil
	case "/chunked-then-more":
		return "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n" + smuggledAnswer, true, nil
	case "/long-then-more":
		body := strings.Repeat("x", 100<<10)
		return fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s%s", len(body), body, smuggledAnswer), true, nil
	case "/head-with-body":
		return "HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nSMUGGLED", true, nil
	case "/ignores-body":
		// Answers without reading the body: its bytes are parsed as
		// the next request (/smuggled below).
		return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false, nil
	case "/smuggled":
		return smuggledAnswer, true, nil
	}
	return innocentAnswer(r), true, nil
}

// paths is the fast path and the net/http path in front of p.
func paths(t *testing.T, p *Proxy) map[string]string {
	return map[string]string{
		"fast":     serveWith(t, p, ServerConfig{}),
		"net/http": serveWith(t, http.HandlerFunc(p.ServeHTTP), ServerConfig{}),
		// A blue-green preview address: every request to the canary,
		// which misbehaves as the stable does.
		"preview": serveWith(t, p.Preview(), ServerConfig{}),
	}
}

// misbehavingBoth is a proxy whose stable and canary are both up's.
func misbehavingBoth(t *testing.T, up *scriptedUpstream, retries int) *Proxy {
	u := nettest.MustURL(t, "http://"+up.ln.Addr().String())
	return newProxy(t, Config{Stable: Upstream{Version: "v1", URL: u}, Canary: &Upstream{Version: "v2", URL: u}, Retries: retries})
}

// checkInnocents sends n requests from n clients at once, each on a
// connection of its own, and fails unless each got its own answer.
func checkInnocents(t *testing.T, base string, n int) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			target := fmt.Sprintf("/innocent-%d", i)
			client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
			resp, err := client.Get(base + target)
			if err != nil {
				errs <- fmt.Errorf("%s: %v", target, err)
				return
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || string(body) != target {
				errs <- fmt.Errorf("%s: got %d %q, not its own answer", target, resp.StatusCode, body)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// rawExchange writes request on a new connection to base's host, closes
// its writing side and returns all it reads back.
func rawExchange(t *testing.T, base, request string) string {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, request); err != nil {
		t.Fatal(err)
	}
	_ = c.(*net.TCPConn).CloseWrite()
	got, _ := io.ReadAll(c)
	return string(got)
}

func TestDesyncMisbehavingUpstream(t *testing.T) {
	for _, tc := range []struct{ name, request string }{
		{"a body longer than its Content-Length", "GET /length-then-more HTTP/1.1\r\nHost: x\r\n\r\n"},
		{"an answer nobody asked for, sent later", "GET /more-later HTTP/1.1\r\nHost: x\r\n\r\n"},
		{"204 with bytes after", "GET /no-content-then-more HTTP/1.1\r\nHost: x\r\n\r\n"},
		{"304 with bytes after", "GET /not-modified-then-more HTTP/1.1\r\nHost: x\r\n\r\n"},
		{"chunked with bytes after", "GET /chunked-then-more HTTP/1.1\r\nHost: x\r\n\r\n"},
		{"a streamed body over 64 KiB with bytes after", "GET /long-then-more HTTP/1.1\r\nHost: x\r\n\r\n"},
		{"HEAD answered with a body", "HEAD /head-with-body HTTP/1.1\r\nHost: x\r\n\r\n"},
		{"a GET body the upstream ignores", "GET /ignores-body HTTP/1.1\r\nHost: x\r\nContent-Length: 36\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := newScriptedUpstream(t, misbehaving)
			p := misbehavingBoth(t, up, -1)
			for name, base := range paths(t, p) {
				t.Run(name, func(t *testing.T) {
					// The misbehaving exchange leaves a pooled connection
					// behind, then innocent users come, sequentially and
					// at once, on the connections it may have poisoned.
					for range 3 {
						answer := rawExchange(t, base, tc.request)
						if strings.Count(answer, "HTTP/1.1 ") != 1 {
							t.Errorf("the attacker got %d answers to one request: %q", strings.Count(answer, "HTTP/1.1 "), answer)
						}
						time.Sleep(60 * time.Millisecond) // past /more-later's late bytes
						checkInnocents(t, base, 1)
						checkInnocents(t, base, 8)
					}
				})
			}
		})
	}
}

// TestDesyncRequestFraming sends the classic ambiguous requests, each
// followed on the same connection by a request it might smuggle, and then
// innocent clients. No innocent client may get another's answer, and the
// fast path refuses or reads each one only the one way that RFC 9112
// allows, so the smuggled request never becomes one of its own upstream.
func TestDesyncRequestFraming(t *testing.T) {
	const smuggle = "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
	for _, tc := range []struct {
		name    string
		request string
		// fast is the fast path's answer's status: 200 when it was
		// forwarded, the refusal's otherwise (fasthttp's parser refuses
		// some with 400 before the proxy's own checks would say 501).
		fast int
	}{
		{"CL.TE", "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggle, 200},
		{"TE.CL", "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n24\r\n" + smuggle + "\r\n0\r\n\r\n", 400},
		{"duplicate Content-Length, conflicting", "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: 36\r\n\r\n" + smuggle, 400},
		{"duplicate Content-Length, equal", "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 36\r\nContent-Length: 36\r\n\r\n" + smuggle, 400},
		{"Content-Length list", "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 36, 36\r\n\r\n" + smuggle, 400},
		{"Transfer-Encoding with a space before the colon", "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\nContent-Length: 36\r\n\r\n" + smuggle, 400},
		{"Transfer-Encoding xchunked", "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\nContent-Length: 36\r\n\r\n" + smuggle, 400},
		{"Transfer-Encoding identity", "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity\r\nContent-Length: 36\r\n\r\n" + smuggle, 400},
		{"Transfer-Encoding listed twice", "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggle, 400},
		{"Transfer-Encoding folded", "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 36\r\nTransfer-Encoding:\r\n chunked\r\n\r\n" + smuggle, 501},
		{"Transfer-Encoding in HTTP/1.0", "POST /a HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggle, 400},
		{"bare LF", "GET /a HTTP/1.1\nHost: x\nContent-Length: 36\n\n" + smuggle, 400},
		{"bare LF in one line", "GET /a HTTP/1.1\r\nHost: x\nContent-Length: 36\r\n\r\n" + smuggle, 400},
		{"obs-fold", "GET /a HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n Content-Length: 36\r\n\r\n" + smuggle, 400},
		{"a space in a header name", "GET /a HTTP/1.1\r\nHost: x\r\nContent Length: 36\r\n\r\n" + smuggle, 400},
		{"HTTP/2.0 as an HTTP/1 request", "GET /a HTTP/2.0\r\nHost: x\r\n\r\n", 505},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, name := range []string{"fast", "net/http", "preview"} {
				t.Run(name, func(t *testing.T) {
					// An upstream of its own: what another path forwarded
					// is not this one's.
					up := newScriptedUpstream(t, misbehaving)
					base := paths(t, misbehavingBoth(t, up, 0))[name]
					answer := rawExchange(t, base, tc.request)
					checkInnocents(t, base, 8)
					if name == "net/http" {
						// Go's server reads on after a request it takes,
						// and forwards the attacker's next request as the
						// attacker's own; the innocents are what counts.
						return
					}
					if want := fmt.Sprintf("HTTP/1.1 %d ", tc.fast); !strings.HasPrefix(answer, want) {
						t.Errorf("answer %q, want %q", firstLine(answer), want)
					}
					if n := strings.Count(answer, "HTTP/1.1 "); n != 1 {
						t.Errorf("%d answers on the attacker's connection, want 1 and the connection closed: %q", n, answer)
					}
					for _, r := range up.requests() {
						if strings.Contains(r, "/smuggled") {
							t.Errorf("the smuggled request reached the upstream: %v", up.requests())
						}
					}
				})
			}
		})
	}
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\r\n")
	return line
}
