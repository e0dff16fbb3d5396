package proxy

import (
	"bufio"
	"bytes"
	"cmp"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/pipit-dev/pipit/internal/testenv/nettest"
)

// rawUpstream is an upstream on 127.0.0.1 that keeps the exact bytes of
// every request head it receives, as an attacker's target would see
// them, and answers each with its name, on kept-alive connections.
type rawUpstream struct {
	name string
	ln   net.Listener
	mu   sync.Mutex
	// heads are the heads received, in order, up to and with the blank
	// line that ends each.
	heads []string
	conns map[net.Conn]bool // open, closed when the test ends
}

func newRawUpstream(t *testing.T, name string) *rawUpstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &rawUpstream{name: name, ln: ln, conns: map[net.Conn]bool{}}
	var serving sync.WaitGroup
	serving.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u.mu.Lock()
			u.conns[c] = true
			u.mu.Unlock()
			serving.Go(func() { u.serve(c) })
		}
	})
	t.Cleanup(func() {
		ln.Close()
		u.mu.Lock()
		for c := range u.conns {
			c.Close()
		}
		u.mu.Unlock()
		serving.Wait()
	})
	return u
}

// URL is the upstream's URL with path appended, as an Upstream's base.
func (u *rawUpstream) URL(path string) string { return "http://" + u.ln.Addr().String() + path }

// serve answers the requests of one connection until it closes.
func (u *rawUpstream) serve(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	for {
		var head bytes.Buffer
		for {
			line, err := br.ReadSlice('\n')
			head.Write(line)
			if err != nil {
				return
			}
			if len(line) <= 2 && strings.TrimRight(string(line), "\r\n") == "" {
				break
			}
		}
		// The head is parsed only to find the body's framing.
		req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(head.Bytes())))
		if err != nil {
			return
		}
		body := io.Reader(io.LimitReader(br, max(req.ContentLength, 0)))
		if len(req.TransferEncoding) > 0 {
			body = httputil.NewChunkedReader(br)
		}
		if _, err := io.Copy(io.Discard, body); err != nil {
			return
		}
		u.mu.Lock()
		u.heads = append(u.heads, head.String())
		u.mu.Unlock()
		fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s", len(u.name), u.name)
	}
}

// takeHeads returns the heads received since the last call.
func (u *rawUpstream) takeHeads() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	h := u.heads
	u.heads = nil
	return h
}

// rawTarget is the request target of a raw head.
func rawTarget(head string) string {
	line, _, _ := strings.Cut(head, "\r\n")
	_, rest, _ := strings.Cut(line, " ")
	target, _, _ := strings.Cut(rest, " ")
	return target
}

// rawFields are the values of every field of a raw head named name, case
// insensitively, in order, as written.
func rawFields(head, name string) []string {
	var vals []string
	_, fields, _ := strings.Cut(head, "\r\n")
	for line := range strings.SplitSeq(fields, "\r\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(k, name) {
			vals = append(vals, strings.TrimSpace(v))
		}
	}
	return vals
}

// testRequest is what a test client sends: the target exactly as
// written, the Host, and header fields in order, repeated ones included.
type testRequest struct {
	method string // GET when empty
	target string
	host   string
	header [][2]string
}

// via is one way for a client to reach a Server, with the path the Server
// takes for it. send sends req from the loopback address from and returns
// the answer's status and body; err is a refusal below HTTP (HTTP/2
// resets a stream whose :path net/http cannot parse).
type via struct {
	name string
	// h2 is set for HTTP/2, which has no Connection header.
	h2 bool
	// scheme is what the client speaks: http, or https over TLS.
	scheme string
	send   func(t *testing.T, from string, req testRequest) (code int, body string, err error)
}

// vias serves h with Servers configured by cfg and returns every way to
// reach them: HTTP/1.1 on the fast path and on net/http (h without its
// fast path), h2c, and HTTP/1.1 (fast path) and HTTP/2 over TLS.
func vias(t *testing.T, h http.Handler, cfg ServerConfig) []via {
	t.Helper()
	plain := strings.TrimPrefix(serveWith(t, h, cfg), "http://")
	std := strings.TrimPrefix(serveWith(t, http.HandlerFunc(h.ServeHTTP), cfg), "http://")
	dir := t.TempDir()
	cfg.CertFile, cfg.KeyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	roots := x509.NewCertPool()
	roots.AddCert(nettest.WriteCert(t, cfg.CertFile, cfg.KeyFile, 1))
	secure := strings.TrimPrefix(serveWith(t, h, cfg), "https://")
	tlsConfig := func(proto string) *tls.Config {
		return &tls.Config{RootCAs: roots, ServerName: "127.0.0.1", NextProtos: []string{proto}}
	}
	return []via{
		{name: "HTTP/1.1 fast path", scheme: "http", send: func(t *testing.T, from string, req testRequest) (int, string, error) {
			return sendRaw(t, dialFrom(t, from, plain), req)
		}},
		{name: "HTTP/1.1 net/http", scheme: "http", send: func(t *testing.T, from string, req testRequest) (int, string, error) {
			return sendRaw(t, dialFrom(t, from, std), req)
		}},
		{name: "h2c", h2: true, scheme: "http", send: func(t *testing.T, from string, req testRequest) (int, string, error) {
			return sendH2(t, dialFrom(t, from, plain), "http", req)
		}},
		{name: "TLS HTTP/1.1 fast path", scheme: "https", send: func(t *testing.T, from string, req testRequest) (int, string, error) {
			c := tls.Client(dialFrom(t, from, secure), tlsConfig("http/1.1"))
			return sendRaw(t, c, req)
		}},
		{name: "TLS HTTP/2", h2: true, scheme: "https", send: func(t *testing.T, from string, req testRequest) (int, string, error) {
			return sendH2(t, tls.Client(dialFrom(t, from, secure), tlsConfig("h2")), "https", req)
		}},
	}
}

// dialFrom connects to addr from the loopback address from; the
// connection is closed when the test ends.
func dialFrom(t *testing.T, from, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	return c
}

// sendRaw writes req on c as raw HTTP/1.1 and reads the answer.
func sendRaw(t *testing.T, c net.Conn, req testRequest) (int, string, error) {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\n", cmp.Or(req.method, http.MethodGet), req.target, req.host)
	for _, kv := range req.header {
		fmt.Fprintf(&b, "%s: %s\r\n", kv[0], kv[1])
	}
	b.WriteString("\r\n")
	if _, err := io.WriteString(c, b.String()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("reading the answer to %q: %v", req.target, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body), nil
}

// sendH2 sends req on c as a client speaking HTTP/2 frame by frame
// (prior knowledge on a plain connection, or after ALPN over TLS), so the
// :path and the fields go out exactly as written, and a stream reset is
// seen as one: Go's client would retry it on a new connection.
func sendH2(t *testing.T, c net.Conn, scheme string, req testRequest) (int, string, error) {
	t.Helper()
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(c, c)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	var block bytes.Buffer
	enc := hpack.NewEncoder(&block)
	fields := [][2]string{{":method", cmp.Or(req.method, http.MethodGet)}, {":scheme", scheme}, {":authority", req.host}, {":path", req.target}}
	for _, kv := range append(fields, req.header...) {
		_ = enc.WriteField(hpack.HeaderField{Name: strings.ToLower(kv[0]), Value: kv[1]})
	}
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block.Bytes(), EndStream: true, EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
	code, body := 0, new(strings.Builder)
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("HTTP/2 %q: %v", req.target, err)
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				_ = fr.WriteSettingsAck()
			}
		case *http2.MetaHeadersFrame:
			code, _ = strconv.Atoi(f.PseudoValue("status"))
			if f.StreamEnded() {
				return code, body.String(), nil
			}
		case *http2.DataFrame:
			body.Write(f.Data())
			if f.StreamEnded() {
				return code, body.String(), nil
			}
		case *http2.RSTStreamFrame:
			return 0, "", fmt.Errorf("stream reset: %v", f.ErrCode)
		case *http2.GoAwayFrame:
			t.Fatalf("HTTP/2 %q: connection closed: %v", req.target, f.ErrCode)
		}
	}
}
