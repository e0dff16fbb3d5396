package upstream

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/pipit-dev/pipit/internal/testenv/nettest"
)

func testConfig() *Config {
	return &Config{DialTimeout: time.Second, HeaderTimeout: 5 * time.Second, IdleTimeout: time.Minute, MaxIdle: 4}
}

// TestTargetFor: the client's target goes under the endpoint's base path,
// with the endpoint's query first, as httputil's ProxyRequest.SetURL.
func TestTargetFor(t *testing.T) {
	for _, tc := range []struct{ base, client, want string }{
		{"http://u", "/a?x=1", "/a?x=1"},
		{"http://u/", "/a", "/a"},
		{"http://u/api", "/a", "/api/a"},
		{"http://u/api/", "/a", "/api/a"},
		{"http://u/api?k=v", "/a?x=1", "/api/a?k=v&x=1"},
		{"http://u/api?k=v", "/a", "/api/a?k=v"},
	} {
		ep := NewEndpoint(nettest.MustURL(t, tc.base), testConfig())
		if got := string(ep.targetFor([]byte(tc.client))); got != tc.want {
			t.Errorf("%s under %s: %q, want %q", tc.client, tc.base, got, tc.want)
		}
	}
}

// TestMayRetry: only connect failures of idempotent requests whose body
// can be sent again, and no more than the retries allowed.
func TestMayRetry(t *testing.T) {
	dial := &errDial{errors.New("connection refused")}
	other := errors.New("connection reset")
	for _, tc := range []struct {
		name       string
		retried    int
		method     string
		replayable bool
		err        error
		want       bool
	}{
		{"a GET that could not connect", 0, http.MethodGet, true, dial, true},
		{"the last retry allowed", 1, http.MethodPut, true, dial, true},
		{"past the retries", 2, http.MethodGet, true, dial, false},
		{"a POST", 0, http.MethodPost, true, dial, false},
		{"a streamed body", 0, http.MethodPut, false, dial, false},
		{"after the request went out", 0, http.MethodGet, true, other, false},
	} {
		if got := MayRetry(2, tc.retried, tc.method, tc.replayable, tc.err); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestSendRetriesOnTheNextReplica: a GET meeting a dead replica is sent
// to the live one; the connection goes back to the pool and is reused.
func TestSendRetriesOnTheNextReplica(t *testing.T) {
	live := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	defer live.Close()
	cfg := testConfig()
	g := NewGroup([]*Endpoint{NewEndpoint(nettest.DeadURL(t), cfg), NewEndpoint(nettest.MustURL(t, live.URL), cfg)})
	defer g.CloseIdle()
	for i := range 4 {
		var req fasthttp.Request
		var resp fasthttp.Response
		req.SetRequestURI("/")
		ans, err := g.Send(&req, &resp, 1)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if err := resp.ReadBody(ans.Body(), 0); err != nil || string(resp.Body()) != "ok" {
			t.Fatalf("request %d: body %q, %v", i, resp.Body(), err)
		}
		ans.Release(true)
	}
	var req fasthttp.Request
	var resp fasthttp.Response
	req.SetRequestURI("/")
	req.Header.SetMethod(http.MethodPost)
	failed := 0
	for range 2 {
		if ans, err := g.Send(&req, &resp, 1); err != nil {
			failed++
		} else {
			ans.Close()
		}
	}
	if failed != 1 {
		t.Fatalf("%d of two POSTs failed; want the one that met the dead replica", failed)
	}
}

// TestPoolDropsAConnectionWithStrayBytes: an idle connection on which the
// upstream sent bytes nobody asked for is not reused, so those bytes are
// never read as the next request's answer.
func TestPoolDropsAConnectionWithStrayBytes(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns sync.WaitGroup
	t.Cleanup(func() { ln.Close(); conns.Wait() })
	conns.Go(func() {
		for n := 0; ; n++ {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Go(func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					if _, err := http.ReadRequest(br); err != nil {
						return
					}
					body := fmt.Sprintf("conn%d", n)
					fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
					time.Sleep(20 * time.Millisecond)
					io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nstray")
				}
			})
		}
	})
	g := NewGroup([]*Endpoint{NewEndpoint(nettest.MustURL(t, "http://"+ln.Addr().String()), testConfig())})
	defer g.CloseIdle()
	for i := range 2 {
		var req fasthttp.Request
		var resp fasthttp.Response
		req.SetRequestURI("/")
		ans, err := g.Send(&req, &resp, 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := resp.ReadBody(ans.Body(), 0); err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf("conn%d", i); string(resp.Body()) != want {
			t.Fatalf("request %d got %q, want %q", i, resp.Body(), want)
		}
		ans.Release(true)
		time.Sleep(100 * time.Millisecond) // the stray answer arrives
	}
}

// TestGroupRoutesOverTheEndpointsInRotation: endpoints out of rotation
// get no request, first try or retry, and stay out in the next group of
// their version; with every one out, all are tried.
func TestGroupRoutesOverTheEndpointsInRotation(t *testing.T) {
	cfg := testConfig()
	var eps []*Endpoint
	for _, u := range []string{"http://10.0.0.7:8080", "http://10.0.0.8:8080", "http://10.0.0.9:8080"} {
		eps = append(eps, NewEndpoint(nettest.MustURL(t, u), cfg))
	}
	picked := func(g *Group) map[string]int {
		seen := map[string]int{}
		for range 6 {
			var first uint32
			for attempt := range 2 {
				seen[g.Pick(&first, attempt).URL().Host]++
			}
		}
		return seen
	}
	g := NewGroup(eps)
	g.SetOutOfRotation([]string{"http://10.0.0.8:8080"})
	if seen := picked(g); seen["10.0.0.7:8080"] != 6 || seen["10.0.0.9:8080"] != 6 || len(seen) != 2 {
		t.Fatalf("picks %v, want 10.0.0.8 skipped and the others evenly", seen)
	}
	if seen := picked(NewGroup(eps[1:])); seen["10.0.0.9:8080"] != 12 || len(seen) != 1 {
		t.Fatalf("picks in the next group %v, want 10.0.0.8 still out", seen)
	}
	g.SetOutOfRotation([]string{"http://10.0.0.7:8080", "http://10.0.0.8:8080", "http://10.0.0.9:8080"})
	if seen := picked(g); len(seen) != 3 {
		t.Fatalf("picks with every endpoint out %v, want all three", seen)
	}
	g.SetOutOfRotation(nil)
	if seen := picked(g); len(seen) != 3 || seen["10.0.0.8:8080"] != 4 {
		t.Fatalf("picks with every endpoint back %v, want all three evenly", seen)
	}
}
