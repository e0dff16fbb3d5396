package proxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/testenv/nettest"
	"github.com/pipit-dev/pipit/internal/traffic"
)

// frontend serves a Proxy for a test and returns its URL.
type frontend struct {
	name  string
	serve func(testing.TB, *Proxy) string
}

// frontends are the two request paths: net/http alone (a Proxy used as an
// http.Handler) and Server's fast path for HTTP/1.
var frontends = []frontend{
	{"net/http", front},
	{"fast", func(t testing.TB, p *Proxy) string { return serveWith(t, p, ServerConfig{}) }},
}

// serveWith serves h with a Server on 127.0.0.1 and returns its URL; the
// server is shut down when the test ends.
func serveWith(t testing.TB, h http.Handler, cfg ServerConfig) string {
	t.Helper()
	_, ln := startServer(t, h, cfg)
	scheme := "http"
	if cfg.CertFile != "" {
		scheme = "https"
	}
	return scheme + "://" + ln.Addr().String()
}

func startServer(t testing.TB, h http.Handler, cfg ServerConfig) (*Server, net.Listener) {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	s, err := NewServer(h, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve returned %v", err)
		}
	})
	return s, ln
}

func TestFrontendsSplitAndKeepAlive(t *testing.T) {
	for _, fe := range frontends {
		t.Run(fe.name, func(t *testing.T) {
			var conns atomic.Int64
			st, ca := countingUpstream(t, "v1", &conns), countingUpstream(t, "v2", &conns)
			c := ca.upstream(t)
			p := newProxy(t, Config{Stable: st.upstream(t), Canary: &c, Weight: 20_000})
			const n = 1000
			checkSplit(t, p, fe.serve(t, p), st, ca, n, 20)
			// One client connection, one at a time: each upstream needs
			// one kept-alive connection, not one per request.
			if got := conns.Load(); got > 2 {
				t.Errorf("the upstreams saw %d connections for %d sequential requests", got, n)
			}
		})
	}
}

// checkSplit sends n sequential GETs through p at url, each of which must
// be answered by the version its body names, and checks that the canary
// ca served about pct percent of them and that p's stats count what the
// upstreams served. It returns those stats.
func checkSplit(t *testing.T, p *Proxy, url string, st, ca *testUpstream, n, pct int) traffic.Stats {
	t.Helper()
	client := &http.Client{}
	for range n {
		code, version, body := get(t, client, url+"/x")
		if code != http.StatusOK || version != body {
			t.Fatalf("got %d, version header %q, body %q", code, version, body)
		}
	}
	if !withinBinomial(int(ca.hits.Load()), n, float64(pct)/100) {
		t.Errorf("canary served %d of %d at %d%%", ca.hits.Load(), n, pct)
	}
	s := settled(t, p, uint64(n))
	if s.Stable.Requests != uint64(st.hits.Load()) || s.Canary.Requests != uint64(ca.hits.Load()) {
		t.Errorf("stats count %d stable + %d canary, upstreams served %d + %d",
			s.Stable.Requests, s.Canary.Requests, st.hits.Load(), ca.hits.Load())
	}
	return s
}

// countingUpstream is newUpstream that also counts the connections
// opened to it in conns.
func countingUpstream(t *testing.T, name string, conns *atomic.Int64) *testUpstream {
	u := &testUpstream{name: name}
	u.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.hits.Add(1)
		io.WriteString(w, name)
	}))
	u.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	u.Start()
	t.Cleanup(u.Close)
	return u
}

func TestFrontendsForwardedAndHopByHopHeaders(t *testing.T) {
	type seen struct {
		Host, XFF, XFP, XFH, Forwarded, URI, Secret, KeepAlive, ProxyAuth, Conn string
	}
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "X-Hop")
		w.Header().Set("X-Hop", "1")
		w.Header().Set("Keep-Alive", "timeout=1")
		_ = json.NewEncoder(w).Encode(seen{
			Host: r.Host, XFF: r.Header.Get("X-Forwarded-For"), XFP: r.Header.Get("X-Forwarded-Proto"),
			XFH: r.Header.Get("X-Forwarded-Host"), Forwarded: strings.Join(r.Header.Values("Forwarded"), ", "),
			URI: r.URL.RequestURI(), Secret: r.Header.Get("X-Secret"), KeepAlive: r.Header.Get("Keep-Alive"),
			ProxyAuth: r.Header.Get("Proxy-Authorization"), Conn: r.Header.Get("Connection"),
		})
	}))
	defer echo.Close()
	for _, fe := range frontends {
		t.Run(fe.name, func(t *testing.T) {
			p := newProxy(t, Config{Stable: Upstream{Version: "v1", URL: nettest.MustURL(t, echo.URL+"/base?k=v")}})
			// A raw request, so that the hop-by-hop headers are sent as
			// written and the answer's are seen as they arrive.
			conn, err := net.DialTimeout("tcp", strings.TrimPrefix(fe.serve(t, p), "http://"), 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
			io.WriteString(conn, "GET /path?q=1 HTTP/1.1\r\nHost: shop.example\r\nConnection: X-Secret, keep-alive\r\n"+
				"X-Secret: s\r\nKeep-Alive: timeout=5\r\nProxy-Authorization: Basic eA==\r\n"+
				"X-Forwarded-For: 10.9.9.9\r\nForwarded: for=10.9.9.9\r\n\r\n")
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var got seen
			if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
				t.Fatal(err)
			}
			// The client's own forwarding headers are replaced: no
			// peer is trusted (see TestForwardingHeadersOnEveryProtocol).
			want := seen{
				Host: strings.TrimPrefix(echo.URL, "http://"), XFF: "127.0.0.1", XFP: "http", XFH: "shop.example",
				Forwarded: "for=127.0.0.1;host=shop.example;proto=http",
				URI:       "/base/path?k=v&q=1",
			}
			if got != want {
				t.Errorf("upstream saw\n%+v\nwant\n%+v", got, want)
			}
			for _, h := range []string{"X-Hop", "Keep-Alive"} {
				if v := resp.Header.Get(h); v != "" {
					t.Errorf("the client got hop-by-hop header %s: %q", h, v)
				}
			}
		})
	}
}

func TestFrontendsStreamEvents(t *testing.T) {
	for _, fe := range frontends {
		t.Run(fe.name, func(t *testing.T) {
			sse, release := eventStream(t)
			p := newProxy(t, Config{Stable: Upstream{Version: "v1", URL: nettest.MustURL(t, sse.URL)}})
			resp, err := http.Get(fe.serve(t, p))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			// The upstream holds the second event until released, so
			// reading the first proves the proxy flushed it.
			br := bufio.NewReader(resp.Body)
			if line, err := br.ReadString('\n'); err != nil || line != "data: first\n" {
				t.Fatalf("first line %q, %v", line, err)
			}
			release()
			rest, err := io.ReadAll(br)
			if err != nil || string(rest) != "\ndata: second\n\n" {
				t.Fatalf("rest %q, %v", rest, err)
			}
			if s := settled(t, p, 1).Stable; s.Count(traffic.Class2xx) != 1 {
				t.Errorf("stream counted as %+v", s)
			}
		})
	}
}

// eventStream is an upstream that sends a server-sent event at once and a
// second one only after release, so that a client that reads the first
// knows the proxy flushed it rather than buffered it. The test's end
// releases it too, before the server closes, which waits for handlers.
func eventStream(t *testing.T) (sse *httptest.Server, release func()) {
	gate := make(chan struct{})
	sse = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: first\n\n")
		http.NewResponseController(w).Flush()
		select {
		case <-gate:
		case <-r.Context().Done():
			return
		}
		io.WriteString(w, "data: second\n\n")
	}))
	t.Cleanup(sse.Close)
	var once sync.Once
	release = func() { once.Do(func() { close(gate) }) }
	t.Cleanup(release)
	return sse, release
}

func TestFrontendsProtocolSwitch(t *testing.T) {
	for _, fe := range frontends {
		t.Run(fe.name, func(t *testing.T) {
			up := echoUpgrade(t)
			p := newProxy(t, Config{Stable: Upstream{Version: "v1", URL: nettest.MustURL(t, up.URL)}})
			conn, br := switchToEcho(t, fe.serve(t, p))
			// Counted once the protocol switched, while the connection
			// is still open: a WebSocket may last for hours.
			if s := settled(t, p, 1).Stable; s.Count(traffic.Class1xx) != 1 {
				t.Errorf("protocol switch counted as %+v, want one 1xx", s)
			}
			for _, msg := range []string{"ping\n", "pong\n"} {
				io.WriteString(conn, msg)
				if line, err := br.ReadString('\n'); line != msg {
					t.Fatalf("echo %q, %v", line, err)
				}
			}
		})
	}
}

// echoUpgrade is an upstream that switches any request to a protocol
// "echo", in which it sends back each line it reads.
func echoUpgrade(t *testing.T) *httptest.Server {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
		brw.Flush()
		for {
			line, err := brw.ReadString('\n')
			if err != nil {
				return
			}
			brw.WriteString(line)
			brw.Flush()
		}
	}))
	t.Cleanup(up.Close)
	return up
}

// switchToEcho asks the proxy at url, on a connection of its own, to
// switch to echoUpgrade's protocol, and fails the test unless the answer
// is 101 from version v1. It returns the connection, closed when the test
// ends, and its reader, which may hold bytes already read from it.
func switchToEcho(t *testing.T, url string) (net.Conn, *bufio.Reader) {
	t.Helper()
	// A raw connection, as a client must keep it after the switch.
	conn, err := net.DialTimeout("tcp", strings.TrimPrefix(url, "http://"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(conn, "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get(DefaultVersionHeader) != "v1" {
		t.Fatalf("got %d, version header %q", resp.StatusCode, resp.Header.Get(DefaultVersionHeader))
	}
	return conn, br
}

// upstreamFailure is a way for an upstream to fail a request, with the
// status the proxy answers for it and how it counts it against the version.
type upstreamFailure struct {
	name            string
	url             string
	code            int
	errs5xx, errsTr uint64
}

// upstreamFailures starts the failing upstreams, closed when the test
// ends, and returns the failures to be had from them. The proxy must have
// a ResponseHeaderTimeout well under 5s for "no headers in time".
func upstreamFailures(t *testing.T) []upstreamFailure {
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}))
	t.Cleanup(slow.Close)
	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "boom", http.StatusServiceUnavailable)
	}))
	t.Cleanup(broken.Close)
	return []upstreamFailure{
		{"nothing listening", nettest.DeadURL(t).String(), http.StatusBadGateway, 0, 1},
		{"no headers in time", slow.URL, http.StatusGatewayTimeout, 0, 1},
		{"upstream 503", broken.URL, http.StatusServiceUnavailable, 1, 0},
	}
}

func TestFrontendsUpstreamFailures(t *testing.T) {
	for _, fe := range frontends {
		for _, tc := range upstreamFailures(t) {
			t.Run(fe.name+"/"+tc.name, func(t *testing.T) {
				p := newProxy(t, Config{
					Stable:                Upstream{Version: "v1", URL: nettest.MustURL(t, tc.url)},
					ResponseHeaderTimeout: 100 * time.Millisecond,
				})
				code, version, _ := get(t, &http.Client{}, fe.serve(t, p))
				if code != tc.code || version != "v1" {
					t.Fatalf("got %d with version header %q, want %d and v1", code, version, tc.code)
				}
				s := settled(t, p, 1).Stable
				if s.Requests != 1 || s.Errors5xx != tc.errs5xx || s.TransportErrors != tc.errsTr {
					t.Errorf("stats %d requests, %d 5xx, %d transport errors", s.Requests, s.Errors5xx, s.TransportErrors)
				}
			})
		}
	}
}

// bodyEcho answers a request's body's SHA-256 and length, and GET
// /bytes?n=N&chunked=1 with N pseudo-random bytes.
func bodyEcho(t *testing.T) *httptest.Server {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/bytes" {
			var n int
			fmt.Sscan(r.URL.Query().Get("n"), &n)
			if r.URL.Query().Get("chunked") == "" {
				w.Header().Set("Content-Length", fmt.Sprint(n))
			}
			w.Write(pattern(n))
			return
		}
		h := sha256.New()
		n, err := io.Copy(h, r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		fmt.Fprintf(w, "%d %x", n, h.Sum(nil))
	}))
	t.Cleanup(s.Close)
	return s
}

func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/251)
	}
	return b
}

func TestFrontendsCarryBodies(t *testing.T) {
	up := bodyEcho(t)
	for _, fe := range frontends {
		t.Run(fe.name, func(t *testing.T) {
			p := newProxy(t, Config{Stable: Upstream{Version: "v1", URL: nettest.MustURL(t, up.URL)}})
			url := fe.serve(t, p)
			for _, n := range []int{0, 10, 70 << 10, 1 << 20} {
				body := pattern(n)
				resp, err := http.Post(url+"/", "application/octet-stream", bytes.NewReader(body))
				if err != nil {
					t.Fatal(err)
				}
				got, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if want := fmt.Sprintf("%d %x", n, sha256.Sum256(body)); string(got) != want {
					t.Errorf("POST of %d bytes: upstream read %q", n, got)
				}
				for _, chunked := range []string{"", "1"} {
					resp, err := http.Get(fmt.Sprintf("%s/bytes?n=%d&chunked=%s", url, n, chunked))
					if err != nil {
						t.Fatal(err)
					}
					got, err := io.ReadAll(resp.Body)
					resp.Body.Close()
					if err != nil || !bytes.Equal(got, pattern(n)) {
						t.Errorf("GET of %d bytes (chunked %q): got %d bytes, %v", n, chunked, len(got), err)
					}
				}
			}
			resp, err := http.Head(url + "/bytes?n=5000")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || resp.ContentLength != 5000 {
				t.Errorf("HEAD: %d, length %d", resp.StatusCode, resp.ContentLength)
			}
			// The same connections serve on after all of that.
			if code, _, _ := get(t, http.DefaultClient, url+"/bytes?n=1"); code != http.StatusOK {
				t.Errorf("after the bodies: %d", code)
			}
		})
	}
}

func TestServerBodyLimit(t *testing.T) {
	up := bodyEcho(t)
	p := newProxy(t, Config{Stable: Upstream{Version: "v1", URL: nettest.MustURL(t, up.URL)}})
	url := serveWith(t, p, ServerConfig{MaxRequestBodyBytes: 1000})
	h2c := &http.Client{Transport: &http.Transport{Protocols: unencryptedHTTP2()}}
	for _, tc := range []struct {
		name   string
		client *http.Client
		body   io.Reader
		code   int
	}{
		{"HTTP/1.1 at the limit", http.DefaultClient, bytes.NewReader(pattern(1000)), http.StatusOK},
		{"HTTP/1.1 over", http.DefaultClient, bytes.NewReader(pattern(1001)), http.StatusRequestEntityTooLarge},
		{"HTTP/1.1 chunked over", http.DefaultClient, io.MultiReader(bytes.NewReader(pattern(1001))), http.StatusRequestEntityTooLarge},
		{"h2c over", h2c, bytes.NewReader(pattern(5000)), http.StatusRequestEntityTooLarge},
		{"h2c chunked over", h2c, io.MultiReader(bytes.NewReader(pattern(5000))), http.StatusRequestEntityTooLarge},
		{"h2c at the limit", h2c, io.MultiReader(bytes.NewReader(pattern(1000))), http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := p.Stats().Stable.Requests
			resp, err := tc.client.Post(url+"/", "application/octet-stream", tc.body)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.code {
				t.Fatalf("got %d, want %d", resp.StatusCode, tc.code)
			}
			if tc.code == http.StatusOK {
				settled(t, p, before+1)
			}
			// A refused body is the client's doing: not counted against
			// the version.
			if tc.code != http.StatusOK && p.Stats().Stable.Requests != before {
				t.Errorf("a refused body was counted as a request to the upstream")
			}
		})
	}
}

func unencryptedHTTP2() *http.Protocols {
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	return &p
}

func TestServerH2C(t *testing.T) {
	st := newUpstream(t, "v1")
	p := newProxy(t, Config{Stable: st.upstream(t)})
	url := serveWith(t, p, ServerConfig{})
	client := &http.Client{Transport: &http.Transport{Protocols: unencryptedHTTP2()}}
	defer client.CloseIdleConnections()
	for range 3 {
		resp, err := client.Get(url + "/x")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.ProtoMajor != 2 || string(body) != "v1" || resp.Header.Get(DefaultVersionHeader) != "v1" {
			t.Fatalf("%s %d %q, version header %q", resp.Proto, resp.StatusCode, body, resp.Header.Get(DefaultVersionHeader))
		}
	}
	settled(t, p, 3)

	p2 := newProxy(t, Config{Stable: st.upstream(t)})
	off := serveWith(t, p2, ServerConfig{DisableH2C: true})
	if _, err := client.Get(off + "/x"); err == nil {
		t.Error("HTTP/2 without TLS was served with DisableH2C")
	}
}

// TestServerTrailers: a chunked response's trailers reach HTTP/2 clients
// (the net/http path) and HTTP/1.1 clients (the fast path), and the
// upstream connection they came on serves the next request.
func TestServerTrailers(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "Grpc-Status")
		w.(http.Flusher).Flush() // a body of unknown length: chunked
		_, _ = io.WriteString(w, "streamed")
		w.Header().Set("Grpc-Status", "0")
	}))
	defer up.Close()
	p := newProxy(t, Config{Stable: Upstream{Version: "v1", URL: nettest.MustURL(t, up.URL)}})
	url := serveWith(t, p, ServerConfig{})
	for _, tc := range []struct {
		name     string
		client   *http.Client
		trailers bool
	}{
		{"HTTP/2", &http.Client{Transport: &http.Transport{Protocols: unencryptedHTTP2()}}, true},
		{"HTTP/1.1", &http.Client{}, true},
		{"HTTP/1.1 again, on the kept-alive upstream connection", &http.Client{}, true},
	} {
		resp, err := tc.client.Get(url + "/")
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		tc.client.CloseIdleConnections()
		if err != nil || string(body) != "streamed" || resp.StatusCode != http.StatusOK {
			t.Errorf("%s: %d %q, %v", tc.name, resp.StatusCode, body, err)
		}
		if got := resp.Trailer.Get("Grpc-Status") == "0"; got != tc.trailers {
			t.Errorf("%s: trailer Grpc-Status %q, want it passed: %v", tc.name, resp.Trailer.Get("Grpc-Status"), tc.trailers)
		}
	}
}

func TestServerStickyCookieOnFastPath(t *testing.T) {
	st, ca := newUpstream(t, "v1"), newUpstream(t, "v2")
	c := ca.upstream(t)
	p := newProxy(t, Config{
		Stable: st.upstream(t), Canary: &c, Weight: 50_000, Name: "shop",
		Traffic: &v1alpha1.TrafficSpec{StickySession: &v1alpha1.StickySession{}},
	})
	url := serveWith(t, p, ServerConfig{})
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	cookies := resp.Cookies()
	if len(cookies) != 1 || cookies[0].Name != "pipit-shop" {
		t.Fatalf("cookies %v", resp.Header["Set-Cookie"])
	}
	// The cookie keeps the user on the version that answered.
	for range 50 {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		req.AddCookie(cookies[0])
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		again, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(again) != string(body) {
			t.Fatalf("first answered by %s, then by %s with the cookie", body, again)
		}
	}
}

func TestServerShutdownRefusesServe(t *testing.T) {
	st := newUpstream(t, "v1")
	p := newProxy(t, Config{Stable: st.upstream(t)})
	s, err := NewServer(p, ServerConfig{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if err := s.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		t.Errorf("Serve after Shutdown: %v", err)
	}
	for name, cfg := range map[string]ServerConfig{
		"cert without key": {CertFile: "x.pem"},
		"negative body":    {MaxRequestBodyBytes: -1},
		"missing files":    {CertFile: "/nonexistent/c.pem", KeyFile: "/nonexistent/k.pem"},
	} {
		if _, err := NewServer(p, cfg); err == nil {
			t.Errorf("%s: NewServer accepted it", name)
		}
	}
}

// BenchmarkServerFastPath measures a whole request through a Server's
// fast path to a loopback backend, over keep-alive connections on both
// sides; compare BenchmarkProxyServe (net/http alone).
func BenchmarkServerFastPath(b *testing.B) {
	benchmarkServe(b, func(b testing.TB, p *Proxy) string {
		return serveWith(b, p, ServerConfig{Logger: testLogger(b)})
	})
}
