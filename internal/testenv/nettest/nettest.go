// Package nettest holds the small helpers that tests of network code share:
// URLs to talk to, one where nothing listens, and a bounded poll.
package nettest

import (
	"net"
	"net/url"
	"testing"
	"time"
)

// MustURL parses s, failing the test if it is not a URL.
func MustURL(t testing.TB, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// DeadURL is an http URL on 127.0.0.1 where nothing listens: its port was
// taken and given back.
func DeadURL(t testing.TB) *url.URL {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return MustURL(t, "http://"+addr)
}

// Eventually polls cond until it holds, failing the test after 10 s of
// real time: for what real processes and sockets do, which no fake clock
// drives.
func Eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}
