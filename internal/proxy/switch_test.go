package proxy

import (
	"net/http"
	"testing"
)

// TestSwitchReplacesTarget serves a Switch on a Server's fast path: the
// requests after Set go to the new target, on the same connection.
func TestSwitchReplacesTarget(t *testing.T) {
	v1, v2 := newProxy(t, Config{Stable: newUpstream(t, "v1").upstream(t)}), newProxy(t, Config{Stable: newUpstream(t, "v2").upstream(t)})
	sw, err := NewSwitch(v1)
	if err != nil {
		t.Fatal(err)
	}
	url := serveWith(t, sw, ServerConfig{})
	if _, _, body := get(t, http.DefaultClient, url); body != "v1" {
		t.Fatalf("before Set: %q, want v1", body)
	}
	m, err := NewMux([]MuxRoute{{PathPrefix: "/", Handler: v2}})
	if err != nil {
		t.Fatal(err)
	}
	if err := sw.Set(m); err != nil {
		t.Fatal(err)
	}
	if _, _, body := get(t, http.DefaultClient, url); body != "v2" {
		t.Errorf("after Set: %q, want v2", body)
	}
	if err := sw.Set(named("plain")); err == nil {
		t.Error("Set took a handler with no fast path")
	}
}
