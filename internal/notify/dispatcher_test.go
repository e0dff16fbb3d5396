package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/testenv/fakeclock"
)

// syncBuffer is a log sink safe for the workers and the test at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// webhookTo is a generic webhook notifier posting to c.
func webhookTo(t *testing.T, name string, c *capture, least Severity) Named {
	t.Helper()
	n, err := New(v1alpha1.NotifierSpec{Type: "webhook", URL: c.url()})
	if err != nil {
		t.Fatal(err)
	}
	return Named{Name: name, Notifier: n, MinSeverity: least}
}

// start runs d until the test ends; tests call d.Close to drain first.
func start(t *testing.T, d *Dispatcher) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	go d.Run(ctx)
	t.Cleanup(func() { cancel(); d.Close() })
}

// payloads decodes what a capture server received.
func payloads(t *testing.T, c *capture) []WebhookPayload {
	t.Helper()
	var out []WebhookPayload
	for _, r := range c.requests() {
		var p WebhookPayload
		if err := json.Unmarshal(r.Body, &p); err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
	return out
}

func reasons(ps []WebhookPayload) string {
	var r []string
	for _, p := range ps {
		r = append(r, p.Event.Reason)
	}
	return strings.Join(r, ",")
}

// sendRollout sends a rollout that fails a check and rolls back.
func sendRollout(d *Dispatcher) {
	fields := map[string]string{FieldCanary: "v2", FieldStable: "v1"}
	d.Send("checkout", event(v1alpha1.EventNormal, "Started", "Rollout of canary v2 started by pipit"), fields)
	d.Send("checkout", event(v1alpha1.EventNormal, "WeightChanged", "Routed 10% of traffic to canary v2"), fields)
	d.Send("checkout", event(v1alpha1.EventNormal, "CheckPassed", "Metrics healthy at 10%"), fields)
	d.Send("checkout", event(v1alpha1.EventWarning, "CheckFailed", "Check failed at 10%"), fields)
	fields[FieldEvidence] = "request-success-rate 91% < min 99%"
	d.Send("checkout", event(v1alpha1.EventWarning, "RollingBack", "Rolling back canary v2"), fields)
	d.Send("checkout", event(v1alpha1.EventWarning, "RolledBack", "RolledBack: all traffic on stable v1"), fields)
}

func TestDispatcherSeverityFilter(t *testing.T) {
	debug, info, warn, errs := newCapture(t, nil), newCapture(t, nil), newCapture(t, nil), newCapture(t, nil)
	d := NewDispatcher([]Named{
		webhookTo(t, "debug", debug, SeverityDebug), webhookTo(t, "info", info, SeverityInfo),
		webhookTo(t, "warn", warn, SeverityWarn), webhookTo(t, "error", errs, SeverityError),
	}, Options{})
	start(t, d)
	sendRollout(d)
	d.Close()

	for _, c := range []struct {
		c    *capture
		want string
	}{
		{debug, "Started,WeightChanged,CheckPassed,CheckFailed,RollingBack,RolledBack"},
		{info, "Started,WeightChanged,CheckFailed,RollingBack,RolledBack"},
		{warn, "CheckFailed,RollingBack,RolledBack"},
		{errs, "RollingBack,RolledBack"},
	} {
		if got := reasons(payloads(t, c.c)); got != c.want {
			t.Errorf("received %s, want %s", got, c.want)
		}
	}
	last := payloads(t, errs)[1]
	if last.Text != "checkout: Rolled back canary v2 — request-success-rate 91% < min 99%" || last.Severity != SeverityError {
		t.Errorf("last payload = %+v", last)
	}
	// Send copied the fields: the evidence added later is not in earlier messages.
	if ev := payloads(t, warn)[0].Fields[FieldEvidence]; ev != "" {
		t.Errorf("CheckFailed carries evidence %q added after it was sent", ev)
	}
}

// Send returns while the endpoint holds every request: it never waits on
// the network. The queue keeps the newest messages and counts the rest.
func TestSendDoesNotWaitForASlowEndpoint(t *testing.T) {
	release := make(chan struct{})
	slow := newCapture(t, func(_ int, _ http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	const queue, events = 10, 1000
	d := NewDispatcher([]Named{webhookTo(t, "slow", slow, SeverityInfo)}, Options{QueueSize: queue, Logger: slog.New(slog.DiscardHandler)})
	start(t, d)
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		for i := range events {
			d.Send("web", event(v1alpha1.EventNormal, "WeightChanged", fmt.Sprint(i)), nil)
		}
	}()
	select { // a guard against a hang, not a measure of speed
	case <-sent:
	case <-time.After(time.Minute):
		t.Fatal("Send blocked while the endpoint held a request")
	}
	held := d.Stats()[0]
	if held.Sent != 0 || held.Dropped < events-queue-1 || held.Dropped > events-queue {
		t.Errorf("while held: %+v; want nothing sent and %d or %d dropped", held, events-queue-1, events-queue)
	}
	close(release)
	d.Close()

	st := d.Stats()[0]
	if st.Sent+st.Dropped+st.Failed != events || st.Failed != 0 {
		t.Errorf("stats %+v do not add up to %d events", st, events)
	}
	got := payloads(t, slow)
	if len(got) != int(st.Sent) || got[len(got)-1].Event.Message != fmt.Sprint(events-1) {
		t.Errorf("delivered %d messages, last %q; want the newest last", len(got), got[len(got)-1].Event.Message)
	}
}

// A slow endpoint delays only its own notifier.
func TestSlowNotifierDoesNotHoldOthers(t *testing.T) {
	release := make(chan struct{})
	slow := newCapture(t, func(_ int, _ http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	fast := newCapture(t, nil)
	delivered := make(chan struct{})
	fast.respond = func(n int, _ http.ResponseWriter, _ *http.Request) {
		if n == 3 {
			close(delivered)
		}
	}
	d := NewDispatcher([]Named{webhookTo(t, "slow", slow, SeverityInfo), webhookTo(t, "fast", fast, SeverityInfo)}, Options{})
	start(t, d)
	for range 3 {
		d.Send("web", event(v1alpha1.EventNormal, "Promoted", ""), nil)
	}
	<-delivered // the fast endpoint got all three while the slow one holds its first
	close(release)
	d.Close()
	if st := d.Stats(); st[0].Sent != 3 || st[1].Sent != 3 {
		t.Errorf("stats = %+v", st)
	}
}

func TestRetriesAreBounded(t *testing.T) {
	failing := newCapture(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "upstream down", http.StatusServiceUnavailable)
	})
	logs := &syncBuffer{}
	d := NewDispatcher([]Named{webhookTo(t, "ops", failing, SeverityInfo)},
		Options{MaxAttempts: 3, Backoff: time.Millisecond, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	start(t, d)
	d.Send("checkout", event(v1alpha1.EventWarning, "RolledBack", "rolled back"), nil)
	d.Close()

	if n := len(failing.requests()); n != 3 {
		t.Errorf("endpoint got %d attempts, want 3", n)
	}
	if st := d.Stats()[0]; st.Failed != 1 || st.Retries != 2 || st.Sent != 0 {
		t.Errorf("stats = %+v", st)
	}
	out := logs.String()
	if !strings.Contains(out, "notification not delivered") || !strings.Contains(out, "notifier=ops") ||
		!strings.Contains(out, "attempts=3") || !strings.Contains(out, "503") {
		t.Errorf("log does not report the failure: %s", out)
	}
	if strings.Contains(out, "s3cr3t") || strings.Contains(out, failing.URL) {
		t.Errorf("log shows the URL: %s", out)
	}
}

// A refusal that will not change (400: bad payload, 404: revoked webhook)
// is not retried.
func TestClientErrorsAreNotRetried(t *testing.T) {
	gone := newCapture(t, func(_ int, w http.ResponseWriter, _ *http.Request) { http.Error(w, "no_service", http.StatusNotFound) })
	d := NewDispatcher([]Named{webhookTo(t, "gone", gone, SeverityInfo)}, Options{Backoff: time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	start(t, d)
	d.Send("web", event(v1alpha1.EventWarning, "Failed", "deadline"), nil)
	d.Close()
	if n := len(gone.requests()); n != 1 {
		t.Errorf("endpoint got %d attempts, want 1", n)
	}
	if st := d.Stats()[0]; st.Failed != 1 || st.Retries != 0 {
		t.Errorf("stats = %+v", st)
	}
}

// 429 is retried after Retry-After, but never longer than MaxBackoff: an
// hour's wait would otherwise outlast the drain and fail the message.
func TestRateLimitHonoursRetryAfterWithinCap(t *testing.T) {
	limited := newCapture(t, func(n int, w http.ResponseWriter, _ *http.Request) {
		if n == 1 {
			w.Header().Set("Retry-After", "3600")
			w.WriteHeader(http.StatusTooManyRequests)
		}
	})
	d := NewDispatcher([]Named{webhookTo(t, "chat", limited, SeverityInfo)},
		Options{MaxBackoff: 10 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	start(t, d)
	d.Send("web", event(v1alpha1.EventNormal, "Promoted", ""), nil)
	d.Close()
	if st := d.Stats()[0]; st.Sent != 1 || st.Retries != 1 {
		t.Errorf("stats = %+v", st)
	}
}

func TestWait(t *testing.T) {
	d := NewDispatcher(nil, Options{Backoff: time.Second, MaxBackoff: 5 * time.Second})
	cases := []struct {
		attempt int
		asked   time.Duration
		want    time.Duration
	}{
		{1, 0, time.Second},
		{2, 0, 2 * time.Second},
		{3, 0, 4 * time.Second},
		{4, 0, 5 * time.Second},
		{200, 0, 5 * time.Second},
		{1, 3 * time.Second, 3 * time.Second},
		{1, time.Hour, 5 * time.Second},
	}
	for _, c := range cases {
		if got := d.wait(c.attempt, c.asked); got != c.want {
			t.Errorf("wait(%d, %v) = %v, want %v", c.attempt, c.asked, got, c.want)
		}
	}
}

// The per-request timeout ends a hung request; it counts as a transport
// error and is retried.
func TestRequestTimeout(t *testing.T) {
	hung := newCapture(t, func(n int, _ http.ResponseWriter, r *http.Request) {
		if n == 1 {
			<-r.Context().Done()
		}
	})
	nm := webhookTo(t, "hung", hung, SeverityInfo)
	nm.Timeout = 20 * time.Millisecond
	d := NewDispatcher([]Named{nm}, Options{Backoff: time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	start(t, d)
	d.Send("web", event(v1alpha1.EventNormal, "Promoted", ""), nil)
	d.Close()
	if st := d.Stats()[0]; st.Sent != 1 || st.Retries != 1 {
		t.Errorf("stats = %+v", st)
	}
}

func TestTemplatesInDispatcher(t *testing.T) {
	c := newCapture(t, nil)
	logs := &syncBuffer{}
	good, err := ParseTemplate(`{{.Default}} <!here>`)
	if err != nil {
		t.Fatal(err)
	}
	// Passes the trial on a RolledBack message, fails on Started.
	bad, err := ParseTemplate(`{{if eq .Event.Reason "Started"}}{{.Event.Nope}}{{end}}{{.Event.Reason}}`)
	if err != nil {
		t.Fatal(err)
	}
	g, b := webhookTo(t, "good", c, SeverityInfo), webhookTo(t, "bad", c, SeverityInfo)
	g.Template, b.Template = good, bad
	d := NewDispatcher([]Named{g}, Options{Logger: slog.New(slog.NewTextHandler(logs, nil))})
	start(t, d)
	d.Send("web", event(v1alpha1.EventNormal, "Started", "go"), map[string]string{FieldCanary: "v2"})
	d.Close()
	d = NewDispatcher([]Named{b}, Options{Logger: slog.New(slog.NewTextHandler(logs, nil))})
	start(t, d)
	d.Send("web", event(v1alpha1.EventNormal, "Started", "go"), map[string]string{FieldCanary: "v2"})
	d.Send("web", event(v1alpha1.EventNormal, "Promoted", ""), nil)
	d.Close()

	got := payloads(t, c)
	want := []string{"web: Started canary v2 — go <!here>", "web: Started canary v2 — go", "Promoted"}
	if len(got) != len(want) {
		t.Fatalf("got %d payloads", len(got))
	}
	for i := range want {
		if got[i].Text != want[i] {
			t.Errorf("payload %d text = %q, want %q", i, got[i].Text, want[i])
		}
	}
	if !strings.Contains(logs.String(), "notification template failed") || !strings.Contains(logs.String(), "notifier=bad") {
		t.Errorf("template failure not logged: %s", logs.String())
	}
}

// Close delivers what is queued; events sent afterwards are dropped.
func TestCloseDrainsThenDrops(t *testing.T) {
	c := newCapture(t, nil)
	d := NewDispatcher([]Named{webhookTo(t, "hook", c, SeverityInfo)}, Options{Logger: slog.New(slog.DiscardHandler)})
	for range 5 { // queued before Run starts
		d.Send("web", event(v1alpha1.EventNormal, "WeightChanged", ""), nil)
	}
	start(t, d)
	d.Send("web", event(v1alpha1.EventWarning, "Aborted", "by alice"), nil)
	d.Close()
	d.Send("web", event(v1alpha1.EventNormal, "Started", ""), nil)
	if n := len(c.requests()); n != 6 {
		t.Errorf("delivered %d, want 6", n)
	}
	if st := d.Stats()[0]; st.Sent != 6 || st.Dropped != 1 {
		t.Errorf("stats = %+v", st)
	}
}

// Cancelling Run's context still drains, within DrainTimeout on the
// dispatcher's clock: a request the endpoint holds is still waited for a
// nanosecond before the deadline, abandoned at it, and the rest dropped.
func TestDrainDeadline(t *testing.T) {
	hold := newCapture(t, func(_ int, _ http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	const drain = 50 * time.Millisecond
	clock := fakeclock.New(time.Date(2026, 7, 1, 12, 0, 0, 0, time.UTC))
	d := NewDispatcher([]Named{webhookTo(t, "hold", hold, SeverityInfo)},
		Options{DrainTimeout: drain, MaxAttempts: 1, Clock: clock, Logger: slog.New(slog.DiscardHandler)})
	for range 3 {
		d.Send("web", event(v1alpha1.EventWarning, "Aborted", ""), nil)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { d.Run(ctx); close(done) }()
	cancel()
	if !clock.WaitForTimers(1, 10*time.Second) {
		t.Fatal("the drain has no deadline")
	}
	clock.Advance(drain - time.Nanosecond)
	select {
	case <-done:
		t.Fatal("Run gave up on the held request before the drain deadline")
	default:
	}
	clock.Advance(time.Nanosecond)
	<-done
	st := d.Stats()[0]
	if st.Sent != 0 || st.Failed+st.Dropped != 3 {
		t.Errorf("stats = %+v", st)
	}
}
