package loadgen

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestRunRefusesBadConfigWithoutSending(t *testing.T) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits.Add(1) }))
	defer srv.Close()

	if _, err := Run(context.Background(), Config{URL: srv.URL, Rate: 0, Duration: time.Second}); err == nil {
		t.Fatal("Run accepted a zero rate")
	}
	if hits.Load() != 0 {
		t.Fatalf("server saw %d requests from a refused config", hits.Load())
	}
}

// seen records what the test server received.
type seen struct {
	mu     sync.Mutex
	method string
	host   string
	header string
	body   string
}

func TestRunCountsRequestsAndStatuses(t *testing.T) {
	var n atomic.Int64
	var got seen
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got.mu.Lock()
		got.method, got.host, got.header, got.body = r.Method, r.Host, r.Header.Get("X-Test"), string(b)
		got.mu.Unlock()
		if n.Add(1)%4 == 0 {
			http.Error(w, "every fourth fails", http.StatusInternalServerError)
			return
		}
		io.WriteString(w, "fine")
	}))
	defer srv.Close()

	s, err := Run(context.Background(), Config{
		URL:      srv.URL + "/",
		Method:   http.MethodPost,
		Rate:     100,
		Duration: time.Second,
		Headers:  http.Header{"X-Test": {"yes"}, "Host": {"app.example"}},
		Body:     []byte("payload"),
	})
	if err != nil {
		t.Fatal(err)
	}

	if s.Requests < 85 || s.Requests > 115 {
		t.Fatalf("Requests = %d, want about 100 (100/s for 1s)", s.Requests)
	}
	if uint64(n.Load()) != s.Requests {
		t.Fatalf("server saw %d requests, summary counts %d", n.Load(), s.Requests)
	}
	ok, failed := s.StatusCodes["200"], s.StatusCodes["500"]
	if uint64(ok+failed) != s.Requests || failed != int(s.Requests)/4 {
		t.Fatalf("StatusCodes = %v for %d requests, want a 500 for every fourth", s.StatusCodes, s.Requests)
	}
	if want := float64(ok) / float64(s.Requests); s.Success != want {
		t.Fatalf("Success = %v, want %v", s.Success, want)
	}
	if s.Answered() != s.Requests {
		t.Fatalf("Answered() = %d, want %d", s.Answered(), s.Requests)
	}
	if len(s.Errors) != 1 || s.Errors[0] != "500 Internal Server Error" {
		t.Fatalf("Errors = %q, want the one distinct 500 status", s.Errors)
	}
	l := s.Latencies
	if l.Mean <= 0 || l.P50 <= 0 || l.P50 > l.P90 || l.P90 > l.P95 || l.P95 > l.P99 || l.P99 > l.Max {
		t.Fatalf("latencies not ordered: %+v", l)
	}
	if s.Rate <= 0 || s.Throughput <= 0 || s.Throughput > s.Rate {
		t.Fatalf("Rate = %v, Throughput = %v", s.Rate, s.Throughput)
	}

	got.mu.Lock()
	defer got.mu.Unlock()
	if got.method != "POST" || got.host != "app.example" || got.header != "yes" || got.body != "payload" {
		t.Fatalf("server got method %q host %q X-Test %q body %q", got.method, got.host, got.header, got.body)
	}
}

func TestRunStopsWhenCancelled(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer srv.Close()

	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(300*time.Millisecond, cancel)
	s := runWithin(t, ctx, Config{URL: srv.URL, Rate: 50, Duration: time.Hour})

	if s.Requests == 0 || s.Requests > 50 {
		t.Fatalf("Requests = %d, want a few from the 300ms before cancellation", s.Requests)
	}
	if s.StatusCodes["200"] != int(s.Requests) || len(s.Errors) != 0 {
		t.Fatalf("StatusCodes = %v, Errors = %q: stopping should not count as failures", s.StatusCodes, s.Errors)
	}
}

// Requests in flight when the run is cancelled are abandoned rather than
// awaited, and they are not reported as failures of the target.
func TestRunAbandonsRequestsInFlightWhenCancelled(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)

	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, cancel)
	s := runWithin(t, ctx, Config{URL: srv.URL, Rate: 20, Duration: time.Hour, Timeout: time.Hour})

	if s.Requests != 0 || len(s.Errors) != 0 {
		t.Fatalf("Requests = %d, Errors = %q: abandoned requests should be left out", s.Requests, s.Errors)
	}
}

func TestRunReportsRefusedConnections(t *testing.T) {
	s, err := Run(context.Background(), Config{URL: "http://" + closedAddr(t) + "/", Rate: 20, Duration: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if s.Requests == 0 || s.Answered() != 0 || s.StatusCodes["0"] != int(s.Requests) || s.Success != 0 {
		t.Fatalf("summary %+v, want every request unanswered", s)
	}
	if len(s.Errors) == 0 || !strings.Contains(s.Errors[0], "connection refused") {
		t.Fatalf("Errors = %q, want connection refused", s.Errors)
	}
}

func TestErrorsAreDistinctAndBounded(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		// 20 distinct statuses, 400..419, each a distinct error message.
		w.WriteHeader(400 + int(n.Add(1)%20))
	}))
	defer srv.Close()

	s, err := Run(context.Background(), Config{URL: srv.URL, Rate: 100, Duration: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Errors) != maxErrors {
		t.Fatalf("len(Errors) = %d, want the bound %d: %q", len(s.Errors), maxErrors, s.Errors)
	}
	for i, e := range s.Errors {
		for _, f := range s.Errors[i+1:] {
			if e == f {
				t.Fatalf("error %q listed twice", e)
			}
		}
	}
}

func TestPrint(t *testing.T) {
	s := Summary{
		Requests: 100, Rate: 100, Throughput: 95, Success: 0.95,
		StatusCodes: map[string]int{"500": 3, "200": 95, "0": 2},
		Latencies: Latencies{Mean: 1234567, P50: time.Millisecond, P90: 2 * time.Millisecond,
			P95: 3 * time.Millisecond, P99: 4 * time.Millisecond, Max: 1500 * time.Millisecond},
		Errors: []string{"500 Internal Server Error", "connection refused"},
	}
	var b bytes.Buffer
	s.Print(&b)
	out := b.String()
	for _, want := range []string{
		"Requests      100\n",
		"Success       95.00%\n",
		"Status codes  no answer: 2, 200: 95, 500: 3\n",
		"mean 1.23ms, p50 1ms, p90 2ms, p95 3ms, p99 4ms, max 1.5s\n",
		"Errors        500 Internal Server Error\n              connection refused\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("Print output lacks %q:\n%s", want, out)
		}
	}
}

// runWithin runs cfg and fails the test if Run does not return within a
// generous bound, which would mean cancellation was ignored.
func runWithin(t *testing.T, ctx context.Context, cfg Config) Summary {
	t.Helper()
	type result struct {
		s   Summary
		err error
	}
	done := make(chan result, 1)
	go func() {
		s, err := Run(ctx, cfg)
		done <- result{s, err}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			t.Fatalf("Run() = %v", r.err)
		}
		return r.s
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its context was cancelled")
		return Summary{}
	}
}

// closedAddr returns a 127.0.0.1 address where nothing listens.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}
