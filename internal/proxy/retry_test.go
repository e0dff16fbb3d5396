package proxy

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/pipit-dev/pipit/internal/testenv/nettest"
)

func TestRetriesConnectFailuresOfIdempotentRequests(t *testing.T) {
	for _, fe := range frontends {
		t.Run(fe.name, func(t *testing.T) {
			var gets, posts atomic.Int64
			alive := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Method == http.MethodPost {
					posts.Add(1)
				} else {
					gets.Add(1)
				}
				io.WriteString(w, "ok")
			}))
			defer alive.Close()
			up := Upstream{Version: "v1", URL: nettest.DeadURL(t), Replicas: []*url.URL{nettest.MustURL(t, alive.URL)}}
			p := newProxy(t, Config{Stable: up})
			u := fe.serve(t, p)
			client := &http.Client{}
			// Every other GET meets the dead replica and is retried on
			// the live one.
			for range 10 {
				if code, _, body := get(t, client, u); code != http.StatusOK || body != "ok" {
					t.Fatalf("GET: %d %q", code, body)
				}
			}
			if gets.Load() != 10 {
				t.Errorf("the live replica served %d GETs, want 10", gets.Load())
			}
			// A POST is never sent twice: those meeting the dead replica fail.
			ok, failed := 0, 0
			for range 10 {
				resp, err := client.Post(u, "text/plain", strings.NewReader("x"))
				if err != nil {
					t.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				switch resp.StatusCode {
				case http.StatusOK:
					ok++
				case http.StatusBadGateway:
					failed++
				default:
					t.Fatalf("POST: %d", resp.StatusCode)
				}
			}
			if failed == 0 || int64(ok) != posts.Load() {
				t.Errorf("POSTs: %d ok, %d failed, the live replica served %d", ok, failed, posts.Load())
			}

			// With retries off, a GET to the dead replica fails too.
			off := newProxy(t, Config{Stable: up, Retries: -1})
			u = fe.serve(t, off)
			codes := map[int]int{}
			for range 4 {
				code, _, _ := get(t, client, u)
				codes[code]++
			}
			if codes[http.StatusBadGateway] != 2 || codes[http.StatusOK] != 2 {
				t.Errorf("retries off: answers %v, want two 200 and two 502", codes)
			}
		})
	}
}

// TestRetriesClosedKeepAliveConnections: an upstream that closes each
// connection after one answer, without saying so, must not cost GETs.
func TestRetriesClosedKeepAliveConnections(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var conns atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			go func() {
				defer c.Close()
				req, err := http.ReadRequest(bufio.NewReader(c))
				if err != nil {
					return
				}
				io.Copy(io.Discard, req.Body)
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
			}()
		}
	}()
	for _, fe := range frontends {
		t.Run(fe.name, func(t *testing.T) {
			p := newProxy(t, Config{Stable: Upstream{Version: "v1", URL: nettest.MustURL(t, "http://"+ln.Addr().String())}, Retries: -1})
			u := fe.serve(t, p)
			for i := range 20 {
				if code, _, body := get(t, http.DefaultClient, u); code != http.StatusOK || body != "ok" {
					t.Fatalf("GET %d: %d %q", i, code, body)
				}
			}
		})
	}
}
