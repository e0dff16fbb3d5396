package proxy

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http/httpguts"

	"github.com/pipit-dev/pipit/internal/testenv/nettest"
)

// The differential test of request framing: the same raw bytes go to the
// fast path (fasthttp's parser and the proxy's own client) and to the
// net/http path (Go's server and ReverseProxy), both in front of one
// upstream that records what it got. Whatever the fast path forwards,
// net/http forwards too, and the upstream gets the same request from
// both: method, target, headers and body. The fast path may refuse what
// net/http takes (it is stricter on purpose where framing is ambiguous:
// see framing.go), never the other way round, and never by passing on
// something the upstream cannot read.

// forwarded is one request as the upstream read it, in a form that does
// not depend on how it was framed.
type forwarded struct {
	method, target string
	header         string // sorted, without the headers a proxy sets or frames with
	body           string
}

// framingHarness is the two paths, each with an upstream of its own, so
// that one path's forward is never taken for the other's.
type framingHarness struct {
	fast, std *recordedPath
}

// recordedPath is one path's listener and the requests its upstream got.
type recordedPath struct {
	addr string
	mu   sync.Mutex
	got  []forwarded
}

func newFramingHarness(t testing.TB) *framingHarness {
	return &framingHarness{
		fast: newRecordedPath(t, func(p *Proxy) http.Handler { return p }),
		std:  newRecordedPath(t, uncancelled),
	}
}

// uncancelled is the net/http path with each request carried through to
// the upstream's answer even when its client has gone. net/http cancels a
// request at its client's end of stream, and a forward so cancelled may
// still reach the upstream after the exchange that sent it has ended,
// where it would be taken for the next exchange's. Carried through, the
// forward is recorded before the server finishes with the connection,
// which exchange waits for. What is forwarded does not change, only when.
func uncancelled(p *Proxy) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.ServeHTTP(w, r.WithContext(context.WithoutCancel(r.Context())))
	})
}

// newRecordedPath serves a Proxy, as handler presents it, in front of a
// recording upstream.
func newRecordedPath(t testing.TB, handler func(*Proxy) http.Handler) *recordedPath {
	rp := &recordedPath{}
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, "body: "+err.Error(), http.StatusBadRequest)
			return
		}
		rp.mu.Lock()
		rp.got = append(rp.got, forwarded{method: r.Method, target: r.RequestURI, header: comparableHeader(r.Header), body: string(body)})
		rp.mu.Unlock()
		io.WriteString(w, "ok")
	}))
	t.Cleanup(up.Close)
	p, err := New(Config{Stable: Upstream{Version: "v1", URL: nettest.MustURL(t, up.URL)}, Retries: -1, Logger: discardLogger})
	if err != nil {
		t.Fatal(err)
	}
	serverCfg := ServerConfig{Logger: discardLogger, ReadTimeout: 2 * time.Second, ReadHeaderTimeout: 2 * time.Second}
	rp.addr = strings.TrimPrefix(serveWith(t, handler(p), serverCfg), "http://")
	return rp
}

// proxySetHeaders are set, replaced or removed by a proxy, or carry the
// framing, which each path chooses on its own. Expect too: fasthttp
// answers a 100-continue itself, net/http asks the upstream.
var proxySetHeaders = []string{
	"Expect", "Connection", "Keep-Alive", "Proxy-Connection", "Te", "Trailer", "Upgrade", "Proxy-Authorization", "Proxy-Authenticate",
	"Transfer-Encoding", "Content-Length", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "Forwarded",
}

func comparableHeader(h http.Header) string {
	var lines []string
	for k, vs := range h {
		if slices.Contains(proxySetHeaders, k) {
			continue
		}
		for _, v := range vs {
			lines = append(lines, k+": "+v)
		}
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

// exchange sends raw on a new connection to the path and returns the status
// of the first answer (0 for none) and the first request the upstream
// got from it.
func (h *recordedPath) exchange(raw []byte) (int, *forwarded) {
	h.mu.Lock()
	h.got = h.got[:0]
	h.mu.Unlock()
	c, err := net.DialTimeout("tcp", h.addr, 2*time.Second)
	if err != nil {
		return -1, nil
	}
	defer c.Close()
	_ = c.SetWriteDeadline(time.Now().Add(3 * time.Second))
	_, _ = c.Write(raw)
	// The end of the stream follows the bytes at once: a server waiting
	// for more of a request answers then, not at its read timeout.
	// net/http takes the end for the client's going away and cancels the
	// request; uncancelled carries it through all the same.
	_ = c.(*net.TCPConn).CloseWrite()
	br := bufio.NewReader(c)
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	status := 0
	for status < http.StatusOK { // interim answers (100 Continue) are skipped
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			break
		}
		status = resp.StatusCode
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	// Read to the server's end of the connection: then whatever it
	// forwarded from it has reached the upstream, and nothing from this
	// exchange can be taken for the next one's.
	_, _ = io.Copy(io.Discard, br)
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.got) == 0 {
		return status, nil
	}
	first := h.got[0]
	return status, &first
}

// check is the differential property for one input.
func (h *framingHarness) check(t *testing.T, raw []byte) {
	if err := h.differ(raw); err != nil {
		t.Fatal(err)
	}
}

// differ returns how the two paths treated raw differently, nil when
// they did not.
func (h *framingHarness) differ(raw []byte) error {
	fastStatus, fast := h.fast.exchange(raw)
	stdStatus, std := h.std.exchange(withoutLeadingEmptyLines(raw))
	switch {
	case fast != nil && std == nil:
		return fmt.Errorf("the fast path forwarded what net/http refused (%d):\n%q\nforwarded: %+v", stdStatus, raw, *fast)
	case fast != nil && *fast != *std:
		return fmt.Errorf("the paths forwarded different requests for\n%q\nfast:     %+v\nnet/http: %+v", raw, *fast, *std)
	case fast == nil && std != nil && (fastStatus == http.StatusBadGateway || fastStatus == http.StatusGatewayTimeout):
		return fmt.Errorf("the fast path sent what the upstream could not read (%d) where net/http forwarded:\n%q\nnet/http: %+v", fastStatus, raw, *std)
	}
	return nil
}

// withoutLeadingEmptyLines is raw without the empty lines (CRLF, or a
// bare LF) before its first request line. RFC 9112 2.2 asks a server to
// ignore at least one, and lets it take a bare LF for a line's end;
// fasthttp ignores them all, net/http refuses the request. The one
// deliberate difference in what the paths accept: the upstream never
// sees those lines, as the proxy frames every request again, so ignoring
// them cannot move where a request ends. net/http is shown the request
// as the fast path reads it.
func withoutLeadingEmptyLines(raw []byte) []byte {
	for {
		switch {
		case bytes.HasPrefix(raw, []byte("\r\n")):
			raw = raw[2:]
		case bytes.HasPrefix(raw, []byte("\n")):
			raw = raw[1:]
		default:
			return raw
		}
	}
}

var discardLogger = slog.New(slog.DiscardHandler)

var framingSeeds = []string{
	"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
	"GET /a/b?c=d HTTP/1.1\r\nHost: x\r\nUser-Agent: t\r\nAccept: */*\r\n\r\n",
	"GET http://x/abs HTTP/1.1\r\nHost: x\r\n\r\n",
	"HEAD / HTTP/1.0\r\nHost: x\r\n\r\n",
	"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc",
	"POST /p HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
	"POST /p HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n0\r\nX-Trailer: 1\r\n\r\n",
	"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /s HTTP/1.1\r\nHost: x\r\n\r\n",
	"POST /p HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
	"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
	"POST /p HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
	"POST /p HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity\r\n\r\n",
	"POST /p HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
	"GET / HTTP/1.1\nHost: x\n\n",
	"GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n 2\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: x\r\nX A: 1\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: x\r\nX-A: \x01\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc",
	"GET /x HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, X-B\r\nX-B: 1\r\nConnection: X-C\r\nX-C: 2\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 1.2.3.4\r\nX-Forwarded-For: 5.6.7.8\r\n\r\n",
	"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi",
	"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /second HTTP/1.1\r\nHost: x\r\n\r\n",
	"\r\n\nGET /lead HTTP/1.1\r\nHost: x\r\n\r\n",
	"\r\r\nGET /lead HTTP/1.1\r\nHost: x\r\n\r\n",
	"\n0 /0 HTTP/1.0\r\n0000:00\r\n\r\n", // found by the fuzzer in CI
	// Found by the fuzzer in CI: a target without a normal form, then a
	// request on the same connection, which net/http closes after its 400.
	"POST /% HTTP/1.1\r\nHost:00\r\n00000000000000:00\r\nTrAnsfer-EnCoding: Chunked\r\n\r\n0\r\n\r\n000 /0 HTTP/1.0\r\n0000:00\r\n\r\n",
	"GET /a%zz HTTP/1.1\r\nHost: x\r\n\r\nGET /after HTTP/1.1\r\nHost: x\r\n\r\n",
}

func FuzzRequestFraming(f *testing.F) {
	for _, s := range framingSeeds {
		f.Add([]byte(s))
	}
	// The harness outlives the inputs: servers per input would make the
	// fuzzer crawl.
	h := newFramingHarness(f)
	f.Fuzz(func(t *testing.T, raw []byte) {
		if len(raw) > 8<<10 {
			return
		}
		h.check(t, raw)
	})
}

// TestRequestFramingSeeds runs the differential check on the seeds and on
// the desync suite's requests in every test run, not only when fuzzing.
func TestRequestFramingSeeds(t *testing.T) {
	h := newFramingHarness(t)
	for _, s := range framingSeeds {
		t.Run(fmt.Sprintf("%.40q", s), func(t *testing.T) { h.check(t, []byte(s)) })
	}
}

// TestValidFieldValueAgreesWithHTTPGuts: the fast path's byte check of
// header values is Go's, byte for byte.
func TestValidFieldValueAgreesWithHTTPGuts(t *testing.T) {
	for c := range 256 {
		v := []byte{'a', byte(c), 'b'}
		if got, want := validFieldValue(v), httpguts.ValidHeaderFieldValue(string(v)); got != want {
			t.Errorf("byte %#x: %v, httpguts says %v", c, got, want)
		}
	}
}

// TestRequestFramingMutations runs the differential check of
// FuzzRequestFraming on seeded random mutations of its seeds in every
// test run: bytes replaced, dropped and repeated.
func TestRequestFramingMutations(t *testing.T) {
	h := newFramingHarness(t)
	r := rand.New(rand.NewPCG(7, 11))
	for range 300 {
		s := []byte(framingSeeds[r.IntN(len(framingSeeds))])
		for range 1 + r.IntN(3) {
			i := r.IntN(len(s))
			switch r.IntN(3) {
			case 0:
				s[i] = byte(r.IntN(256))
			case 1:
				s = append(s[:i], s[i+1:]...)
			default:
				s = append(s[:i+1], s[i:]...)
			}
		}
		if err := h.differ(s); err != nil {
			t.Error(err)
		}
	}
}
