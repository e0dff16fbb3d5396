package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/pipit-dev/pipit/internal/loadgen"
)

func TestLoadtestBadInput(t *testing.T) {
	ok := []string{"--url", "http://127.0.0.1:1/", "--rate", "10", "--duration", "1s"}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no url", []string{"--rate", "10", "--duration", "1s"}, "url is required"},
		{"relative url", []string{"--url", "/x", "--rate", "10", "--duration", "1s"}, "absolute"},
		{"no rate", []string{"--url", "http://127.0.0.1:1/", "--duration", "1s"}, "rate"},
		{"no duration", []string{"--url", "http://127.0.0.1:1/", "--rate", "10"}, "duration"},
		{"rate not a number", slices.Concat(ok, []string{"--rate", "lots"}), "rate"},
		{"header without colon", slices.Concat(ok, []string{"--header", "X-Test yes"}), "--header"},
		{"header with bad name", slices.Concat(ok, []string{"--header", "X Test: yes"}), "header name"},
		{"bad output", slices.Concat(ok, []string{"-o", "yaml"}), "--output"},
		{"bad method", slices.Concat(ok, []string{"--method", "GE T"}), "method"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := Execute(context.Background(), append([]string{"loadtest"}, tt.args...), &stdout, &stderr)
			if code != ExitBadInput {
				t.Fatalf("exit %d, want %d; stderr: %s", code, ExitBadInput, stderr.String())
			}
			if !strings.Contains(stderr.String(), tt.want) {
				t.Fatalf("stderr %q does not mention %q", stderr.String(), tt.want)
			}
			if stdout.Len() != 0 {
				t.Fatalf("stdout = %q, want nothing", stdout.String())
			}
		})
	}
}

func TestLoadtestAgainstLocalServer(t *testing.T) {
	var hits, tagged atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if r.Header.Get("X-Test") == "a: b" {
			tagged.Add(1)
		}
	}))
	defer srv.Close()

	var stdout, stderr bytes.Buffer
	code := Execute(context.Background(), []string{"loadtest", "--url", srv.URL, "--rate", "50",
		"--duration", "200ms", "--header", "x-test: a: b", "-o", "json"}, &stdout, &stderr)
	if code != ExitOK {
		t.Fatalf("exit %d; stderr: %s", code, stderr.String())
	}
	var s loadgen.Summary
	if err := json.Unmarshal(stdout.Bytes(), &s); err != nil {
		t.Fatalf("output is not a JSON summary: %v\n%s", err, stdout.String())
	}
	if s.Requests == 0 || uint64(hits.Load()) != s.Requests || s.StatusCodes["200"] != int(s.Requests) || s.Success != 1 {
		t.Fatalf("summary %+v, server saw %d requests", s, hits.Load())
	}
	if tagged.Load() != hits.Load() {
		t.Fatalf("%d of %d requests carried the header", tagged.Load(), hits.Load())
	}
}

func TestLoadtestPrintsTable(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer srv.Close()

	var stdout, stderr bytes.Buffer
	code := Execute(context.Background(), []string{"loadtest", "--url", srv.URL, "--rate", "20", "--duration", "100ms"}, &stdout, &stderr)
	if code != ExitOK {
		t.Fatalf("exit %d; stderr: %s", code, stderr.String())
	}
	for _, want := range []string{"Requests", "Success       100.00%", "Status codes  200: ", "p99"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, stdout.String())
		}
	}
}

func TestLoadtestFailsWhenNothingAnswers(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now

	var stdout, stderr bytes.Buffer
	code := Execute(context.Background(), []string{"loadtest", "--url", "http://" + addr + "/", "--rate", "20", "--duration", "100ms"}, &stdout, &stderr)
	if code != ExitFailed {
		t.Fatalf("exit %d, want %d; stderr: %s", code, ExitFailed, stderr.String())
	}
	if !strings.Contains(stderr.String(), "connection refused") {
		t.Fatalf("stderr %q does not give the reason", stderr.String())
	}
	if !strings.Contains(stdout.String(), "no answer: ") {
		t.Fatalf("the summary is still printed; got %q", stdout.String())
	}
}
