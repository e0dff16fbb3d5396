package controlapi

import (
	"context"
	"fmt"
	"net/http"
	"time"
)

// MaxStreams bounds the event streams open at once across all clients, so
// that dashboards left open cannot take the daemon's time or memory.
const MaxStreams = 64

// StreamLifetime ends a stream after a while; browsers' EventSource
// reconnects by itself, and a forgotten client lets go.
const StreamLifetime = 10 * time.Minute

const (
	// streamWriteTimeout bounds each write to a slow client.
	streamWriteTimeout = 10 * time.Second
	// streamRetry tells EventSource how long to wait before reconnecting.
	streamRetry = 2 * time.Second
	// streamKeepAlive is how long a stream stays quiet before a comment
	// line is sent, so that proxies keep it open and a client gone away
	// is noticed.
	streamKeepAlive = 15 * time.Second
)

// stream serves GET /v1/rollouts/{name}/stream: server-sent events, a
// "rollout" event with the RolloutView whenever it changes (the live
// figures change at every check), a "history" event with the latest
// events whenever the status changes, and "gone" when the rollout is
// removed. All the streams of a rollout share one reader of it (feeds).
func (s server) stream(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if _, err := s.b.Rollout(r.Context(), name); err != nil {
		s.fail(w, r, err)
		return
	}
	select {
	case s.streams <- struct{}{}:
		defer func() { <-s.streams }()
	default:
		s.writeError(w, http.StatusServiceUnavailable, fmt.Sprintf("%d event streams are open, the most the daemon serves; close a dashboard", cap(s.streams)))
		return
	}
	frames, stop, err := s.feeds.subscribe(name)
	if err != nil {
		s.writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	defer stop()
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	ctx, cancel := context.WithTimeout(r.Context(), StreamLifetime)
	defer cancel()
	sw := streamWriter{w: w, rc: http.NewResponseController(w)}
	if sw.write(fmt.Appendf(nil, "retry: %d\n\n", streamRetry.Milliseconds())) != nil {
		return
	}
	sw.forward(ctx, frames)
}

// streamWriter writes server-sent events, each within streamWriteTimeout
// (the server's own write timeout would cut a long stream).
type streamWriter struct {
	w  http.ResponseWriter
	rc *http.ResponseController
}

// forward writes the frames until ctx ends, the feed closes the channel
// or a write fails, with a comment line after streamKeepAlive of quiet.
func (sw streamWriter) forward(ctx context.Context, frames <-chan frame) {
	keepAlive := time.NewTicker(streamKeepAlive)
	defer keepAlive.Stop()
	for {
		var msg []byte
		select {
		case <-ctx.Done():
			return
		case fr, ok := <-frames:
			if !ok {
				return
			}
			msg = fmt.Appendf(nil, "event: %s\ndata: %s\n\n", fr.kind, fr.data)
			keepAlive.Reset(streamKeepAlive)
		case <-keepAlive.C:
			msg = []byte(":\n\n")
		}
		if sw.write(msg) != nil {
			return
		}
	}
}

// write writes msg and flushes it.
func (sw streamWriter) write(msg []byte) error {
	if err := sw.rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout)); err != nil {
		return err
	}
	if _, err := sw.w.Write(msg); err != nil {
		return err
	}
	return sw.rc.Flush()
}
