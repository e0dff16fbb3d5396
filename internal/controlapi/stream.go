package controlapi

import (
	"bytes"
	"context"
	"encoding/json"
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
	// streamPoll is how often a stream reads the rollout: a copy of its
	// in-memory status under a mutex, cheap next to the data plane.
	streamPoll = time.Second
	// streamHistory is how many of the latest events a change sends.
	streamHistory = 200
	// streamWriteTimeout bounds each write to a slow client.
	streamWriteTimeout = 10 * time.Second
	// streamRetry tells EventSource how long to wait before reconnecting.
	streamRetry = 2 * time.Second
	// streamKeepAlive is how many quiet polls pass before a comment line
	// is sent, so that proxies keep an idle stream open and a client gone
	// away is noticed.
	streamKeepAlive = 15
)

// stream serves GET /v1/rollouts/{name}/stream: server-sent events, a
// "rollout" event with the RolloutView whenever it changes (the live
// figures change at every check), and a "history" event with the latest
// events whenever the status changes.
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
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	ctx, cancel := context.WithTimeout(r.Context(), StreamLifetime)
	defer cancel()
	sw := streamWriter{w: w, rc: http.NewResponseController(w)}
	if err := sw.send("", fmt.Appendf(nil, "retry: %d\n\n", streamRetry.Milliseconds())); err != nil {
		return
	}
	s.pushChanges(ctx, name, sw)
}

// pushChanges sends the rollout's changes until ctx ends or a write fails.
func (s server) pushChanges(ctx context.Context, name string, sw streamWriter) {
	tick := time.NewTicker(streamPoll)
	defer tick.Stop()
	var lastView, lastStatus []byte
	quiet := 0
	for {
		if quiet++; quiet > streamKeepAlive {
			if sw.send("", []byte(":\n\n")) != nil {
				return
			}
			quiet = 0
		}
		v, err := s.b.Rollout(ctx, name)
		if err != nil {
			gone, _ := json.Marshal(ErrorResponse{Error: fmt.Sprintf("rollout %s is no longer served", name)})
			_ = sw.send("gone", gone)
			return
		}
		view, _ := json.Marshal(v)
		status, _ := json.Marshal(v.Status)
		if !bytes.Equal(view, lastView) {
			if sw.send("rollout", view) != nil {
				return
			}
			lastView, quiet = view, 0
		}
		if !bytes.Equal(status, lastStatus) {
			if !s.sendHistory(ctx, name, sw) {
				return
			}
			lastStatus = status
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// sendHistory sends the latest events; false when the stream is over.
func (s server) sendHistory(ctx context.Context, name string, sw streamWriter) bool {
	evs, err := s.b.Events(ctx, name, streamHistory)
	if err != nil {
		s.log.Warn("control API stream: reading the history failed", "rollout", name, "err", err)
		return ctx.Err() == nil
	}
	body, _ := json.Marshal(EventList{Events: evs})
	return sw.send("history", body) == nil
}

// streamWriter writes server-sent events, each within streamWriteTimeout
// (the server's own write timeout would cut a long stream).
type streamWriter struct {
	w  http.ResponseWriter
	rc *http.ResponseController
}

// send writes one event of kind with data on one line, or raw bytes when
// kind is empty, and flushes it.
func (sw streamWriter) send(kind string, data []byte) error {
	if err := sw.rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout)); err != nil {
		return err
	}
	msg := data
	if kind != "" {
		msg = fmt.Appendf(nil, "event: %s\ndata: %s\n\n", kind, data)
	}
	if _, err := sw.w.Write(msg); err != nil {
		return err
	}
	return sw.rc.Flush()
}
