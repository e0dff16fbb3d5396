package controlapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

const (
	// streamPoll is how often a rollout's feed reads it: a copy of its
	// in-memory status under a mutex, cheap next to the data plane.
	streamPoll = time.Second
	// streamPollTimeout bounds one read of the rollout and its history.
	streamPollTimeout = 10 * time.Second
	// streamHistory is how many of the latest events a change sends.
	streamHistory = 200
	// feedBuffer is how many frames a stream may lag behind before it is
	// dropped (its client reconnects and starts afresh).
	feedBuffer = 8
)

// errShuttingDown refuses a stream while the server shuts down.
var errShuttingDown = errors.New("the control API is shutting down")

// frame is one server-sent event: its kind and its JSON data.
type frame struct {
	kind string
	data []byte
}

// feeds share one reader of each rollout among all the streams that follow
// it, so that ten open dashboards cost the daemon what one does.
type feeds struct {
	b      Backend
	log    *slog.Logger
	mu     sync.Mutex
	byName map[string]*feed
	closed bool
	done   chan struct{} // closed by close
}

// feed is one rollout's reader and the streams that follow it.
type feed struct {
	subs map[chan frame]struct{}
	// last are the latest frame of each kind, which a new stream gets
	// at once.
	last map[string]frame
}

func newFeeds(b Backend, log *slog.Logger) *feeds {
	return &feeds{b: b, log: log, byName: map[string]*feed{}, done: make(chan struct{})}
}

// subscribe follows the rollout name: its frames arrive on the channel
// until it is closed (the rollout gone, the stream too slow, the server
// shutting down); stop ends the subscription.
func (fs *feeds) subscribe(name string) (frames <-chan frame, stop func(), err error) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.closed {
		return nil, nil, errShuttingDown
	}
	f := fs.byName[name]
	if f == nil {
		f = &feed{subs: map[chan frame]struct{}{}, last: map[string]frame{}}
		fs.byName[name] = f
		go fs.run(name, f)
	}
	ch := make(chan frame, feedBuffer)
	for _, kind := range []string{"rollout", "history"} {
		if fr, ok := f.last[kind]; ok {
			ch <- fr
		}
	}
	f.subs[ch] = struct{}{}
	return ch, func() { fs.unsubscribe(f, ch) }, nil
}

func (fs *feeds) unsubscribe(f *feed, ch chan frame) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if _, ok := f.subs[ch]; ok {
		delete(f.subs, ch)
		close(ch)
	}
}

// close ends every stream and refuses new ones: the server shuts down,
// and would otherwise wait for streams that never end by themselves.
func (fs *feeds) close() {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.closed {
		return
	}
	fs.closed = true
	close(fs.done)
	for name, f := range fs.byName {
		for ch := range f.subs {
			close(ch)
		}
		delete(fs.byName, name)
	}
}

// run reads the rollout every streamPoll while anyone follows it.
func (fs *feeds) run(name string, f *feed) {
	tick := time.NewTicker(streamPoll)
	defer tick.Stop()
	var lastView, lastStatus []byte
	for {
		frames, gone := fs.poll(name, &lastView, &lastStatus)
		if !fs.publish(name, f, frames, gone) {
			return
		}
		select {
		case <-fs.done:
			return
		case <-tick.C:
		}
	}
}

// poll reads the rollout, and its history when its status changed, and
// returns what changed since the last poll; gone when the rollout is.
func (fs *feeds) poll(name string, lastView, lastStatus *[]byte) (frames []frame, gone bool) {
	ctx, cancel := context.WithTimeout(context.Background(), streamPollTimeout)
	defer cancel()
	v, err := fs.b.Rollout(ctx, name)
	if errors.Is(err, ErrNotFound) {
		body, _ := json.Marshal(ErrorResponse{Error: fmt.Sprintf("rollout %s is no longer served", name)})
		return []frame{{kind: "gone", data: body}}, true
	}
	if err != nil {
		fs.log.Warn("control API stream: reading the rollout failed", "rollout", name, "err", err)
		return nil, false
	}
	view, _ := json.Marshal(v)
	status, _ := json.Marshal(v.Status)
	if !bytes.Equal(view, *lastView) {
		frames, *lastView = append(frames, frame{kind: "rollout", data: view}), view
	}
	if !bytes.Equal(status, *lastStatus) {
		evs, err := fs.b.Events(ctx, name, streamHistory)
		if err != nil {
			fs.log.Warn("control API stream: reading the history failed", "rollout", name, "err", err)
			return frames, false
		}
		body, _ := json.Marshal(EventList{Events: evs})
		frames, *lastStatus = append(frames, frame{kind: "history", data: body}), status
	}
	return frames, false
}

// publish hands frames to every stream of f; a stream that lags
// feedBuffer frames behind is dropped. It reports false, and ends the
// feed, when nobody follows it any more, the rollout is gone, or the
// feeds are closed.
func (fs *feeds) publish(name string, f *feed, frames []frame, gone bool) bool {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.closed {
		return false
	}
	for _, fr := range frames {
		f.last[fr.kind] = fr
		for ch := range f.subs {
			select {
			case ch <- fr:
			default:
				delete(f.subs, ch)
				close(ch)
			}
		}
	}
	if gone || len(f.subs) == 0 {
		for ch := range f.subs {
			close(ch)
		}
		delete(fs.byName, name)
		return false
	}
	return true
}
