package controlapi

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pipit-dev/pipit/internal/rollout"
)

// sseEvent is one server-sent event.
type sseEvent struct{ kind, data string }

// readEvents reads a stream's events into a channel until it ends.
func readEvents(r *bufio.Reader) <-chan sseEvent {
	out := make(chan sseEvent, 16)
	go func() {
		defer close(out)
		var ev sseEvent
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			line = strings.TrimRight(line, "\n")
			switch {
			case strings.HasPrefix(line, "event: "):
				ev.kind = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				ev.data = strings.TrimPrefix(line, "data: ")
			case line == "" && ev.kind != "":
				out <- ev
				ev = sseEvent{}
			}
		}
	}()
	return out
}

// next waits for the next event of kind, skipping others.
func next(t *testing.T, events <-chan sseEvent, kind string) string {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatalf("stream ended before a %q event", kind)
			}
			if ev.kind == kind {
				return ev.data
			}
		case <-deadline:
			t.Fatalf("no %q event within 20s", kind)
		}
	}
}

func openStream(t *testing.T, u *uiServer, ctx context.Context, name string) (*http.Response, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, "GET", u.URL+"/v1/rollouts/"+name+"/stream", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer op-secret")
	return u.Client().Do(req)
}

// A stream sends the rollout and its history at once, then each change of
// its status; the streams open at once are bounded, the next one refused
// with 503 and why; an unknown rollout is 404.
func TestStreamPushesChanges(t *testing.T) {
	f := newFake()
	u := newUIServer(t, f, uiTokens, 1, false)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	resp, err := openStream(t, u, ctx, "web")
	if err != nil || resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("stream: %v %+v", err, resp)
	}
	defer resp.Body.Close()
	events := readEvents(bufio.NewReader(resp.Body))
	var v RolloutView
	if err := json.Unmarshal([]byte(next(t, events, "rollout")), &v); err != nil || v.Name != "web" {
		t.Fatalf("first rollout event: %+v %v", v, err)
	}
	var h EventList
	if err := json.Unmarshal([]byte(next(t, events, "history")), &h); err != nil {
		t.Fatalf("first history event: %v", err)
	}
	second, err := openStream(t, u, ctx, "web")
	if err != nil || second.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("a stream beyond the bound: %v %+v, want 503", err, second)
	}
	second.Body.Close()
	if _, err := f.Submit(ctx, "web", rollout.Command{Kind: rollout.CommandPause, Actor: "ops"}); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(next(t, events, "rollout")), &v); err != nil || v.Status.Phase != "Paused" {
		t.Fatalf("rollout event after the pause: phase %q %v", v.Status.Phase, err)
	}
	next(t, events, "history")
	cancel()
	missing, err := openStream(t, u, context.Background(), "nope")
	if err != nil || missing.StatusCode != http.StatusNotFound {
		t.Fatalf("stream of an unknown rollout: %v %+v, want 404", err, missing)
	}
	missing.Body.Close()
}

// Shutting the server down ends the open streams at once instead of
// waiting for them, and refuses none of the other requests in flight.
func TestShutdownEndsStreams(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(ln.Addr().String(), NewHandler(newFake(), SingleToken(testToken), nil, nil), nil)
	go srv.Serve(ln)
	req, err := http.NewRequest("GET", "http://"+ln.Addr().String()+"/v1/rollouts/web/stream", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("stream: %v %+v", err, resp)
	}
	defer resp.Body.Close()
	events := readEvents(bufio.NewReader(resp.Body))
	next(t, events, "rollout")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown with a stream open: %v after %s", err, time.Since(start))
	}
	for range events {
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("shutdown took %s with a stream open", took)
	}
}
