package notify

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/rollout"
	"github.com/pipit-dev/pipit/internal/spec"
)

// Named is one configured destination of a Dispatcher.
type Named struct {
	// Name identifies the notifier in logs and Stats.
	Name string
	// Notifier delivers the messages.
	Notifier Notifier
	// MinSeverity is the least severity sent.
	MinSeverity Severity
	// Template renders the text; nil sends DefaultText.
	Template *Template
	// Timeout bounds each attempt; zero means DefaultTimeout.
	Timeout time.Duration
}

// Build makes the Dispatcher's notifiers from a rollout's specs, reading
// their URLs from the spec, the environment or files.
func Build(specs []v1alpha1.NotifierSpec) ([]Named, error) {
	out := make([]Named, 0, len(specs))
	seen := map[string]bool{}
	for _, ns := range specs {
		name := spec.NotifierName(ns)
		if seen[name] {
			return nil, fmt.Errorf("notifier %s: name used twice; give each notifier its own name", name)
		}
		seen[name] = true
		n, err := New(ns) // validates the whole spec first
		if err != nil {
			return nil, err
		}
		least, _ := spec.ParseSeverity(ns.Severity)
		nm := Named{Name: name, Notifier: n, MinSeverity: least}
		if ns.Template != "" {
			nm.Template, _ = ParseTemplate(ns.Template)
		}
		if ns.Timeout != nil {
			nm.Timeout = ns.Timeout.Duration
		}
		out = append(out, nm)
	}
	return out, nil
}

// Options tune a Dispatcher; zero values take the defaults.
type Options struct {
	// QueueSize is how many messages wait per notifier; when full, the
	// oldest is dropped, since the latest news matters most. Default 100.
	QueueSize int
	// MaxAttempts bounds the attempts per message, the first included.
	// Default 3.
	MaxAttempts int
	// Backoff is the wait before the first retry, doubled for each further
	// one. Default 1s.
	Backoff time.Duration
	// MaxBackoff caps the wait between attempts, including one asked for
	// with Retry-After. Default 30s.
	MaxBackoff time.Duration
	// DrainTimeout bounds how long Run keeps delivering queued messages
	// once asked to stop. Default 5s.
	DrainTimeout time.Duration
	// Logger receives delivery failures and drops; nil discards them.
	// URLs are never logged: they are secrets.
	Logger *slog.Logger
	// Clock times the pauses between attempts and the drain; nil is the
	// wall clock.
	Clock rollout.Clock
}

func (o Options) withDefaults() Options {
	if o.QueueSize <= 0 {
		o.QueueSize = 100
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 3
	}
	if o.Backoff <= 0 {
		o.Backoff = time.Second
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 30 * time.Second
	}
	if o.DrainTimeout <= 0 {
		o.DrainTimeout = 5 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	o.Clock = rollout.ClockOrSystem(o.Clock)
	return o
}

// Dispatcher sends events to notifiers in the background. Send never waits
// on the network: each notifier has a bounded queue and a worker that
// delivers, times out and retries on its own, so a slow or failing endpoint
// delays only its own messages.
type Dispatcher struct {
	opts    Options
	queues  []*queue
	stop    chan struct{}
	stopped sync.Once
	started atomic.Bool
	done    chan struct{}
}

// queue holds one notifier's pending messages and counters.
type queue struct {
	n      Named
	ch     chan Message
	mu     sync.Mutex // serialises pushes, so drop-oldest cannot race itself
	closed bool       // under mu: Run has ended; pushes are dropped

	sent, failed, dropped, retries atomic.Uint64
}

// NewDispatcher returns a Dispatcher that queues messages at once and
// delivers them while Run runs.
func NewDispatcher(notifiers []Named, opts Options) *Dispatcher {
	opts = opts.withDefaults()
	d := &Dispatcher{opts: opts, stop: make(chan struct{}), done: make(chan struct{})}
	for _, n := range notifiers {
		if n.Timeout <= 0 {
			n.Timeout = DefaultTimeout
		}
		d.queues = append(d.queues, &queue{n: n, ch: make(chan Message, opts.QueueSize)})
	}
	return d
}

// Send queues an event of a rollout for every notifier whose severity
// filter lets it through, and returns at once. fields are copied.
func (d *Dispatcher) Send(rollout string, e v1alpha1.Event, fields map[string]string) {
	sev := SeverityOf(e)
	var m *Message
	for _, q := range d.queues {
		if sev < q.n.MinSeverity {
			continue
		}
		if m == nil {
			m = &Message{Rollout: rollout, Event: e, Severity: sev, Fields: maps.Clone(fields)}
		}
		if q.push(*m) {
			d.logDrop(q)
		}
	}
}

// SendAll queues the events that led to st, with st's versions and
// rollback evidence as fields.
func (d *Dispatcher) SendAll(rollout string, st v1alpha1.RolloutStatus, events []v1alpha1.Event) {
	fields := map[string]string{}
	if st.Stable != nil {
		fields[FieldStable] = st.Stable.Version
	}
	if st.Canary != nil {
		fields[FieldCanary] = st.Canary.Version
	}
	if rb := st.Rollback; rb != nil {
		fields[FieldMetric], fields[FieldEvidence] = rb.Metric, rb.Reason
	}
	for _, e := range events {
		d.Send(rollout, e, fields)
	}
}

// push queues m, dropping the oldest message when the queue is full or m
// itself once the queue is closed; it reports whether it dropped one.
func (q *queue) push(m Message) (dropped bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return true
	}
	for {
		select {
		case q.ch <- m:
			return dropped
		default:
		}
		select {
		case <-q.ch:
			dropped = true
		default: // the worker just took one: room again
		}
	}
}

// logDrop counts a message never attempted and logs the 1st, 2nd, 4th,
// 8th… drop, so that a flood of events towards a dead endpoint cannot flood
// the log too.
func (d *Dispatcher) logDrop(q *queue) {
	if n := q.dropped.Add(1); n&(n-1) == 0 {
		d.opts.Logger.Warn("notification dropped: queue full or dispatcher stopping", "notifier", q.n.Name, "dropped", n)
	}
}

// Run delivers messages until ctx is cancelled or Close is called, then
// keeps delivering what is queued for at most DrainTimeout, so the last
// events of a shutdown (an abort) still go out; what is left is dropped.
// Requests made while draining are not cancelled by ctx. Run works once;
// a second call, or a call after Close, returns at once.
func (d *Dispatcher) Run(ctx context.Context) {
	if d.started.CompareAndSwap(false, true) {
		d.run(ctx)
	}
}

// Close stops Run as a cancelled context would and waits until it has
// drained; if Run was not called, Close delivers what is queued itself.
// Events sent after Close returns are dropped.
func (d *Dispatcher) Close() {
	d.stopped.Do(func() { close(d.stop) })
	if d.started.CompareAndSwap(false, true) {
		d.run(context.Background())
	}
	<-d.done
}

func (d *Dispatcher) run(ctx context.Context) {
	defer close(d.done)
	abort, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	stopping := make(chan struct{})
	var wg sync.WaitGroup
	for _, q := range d.queues {
		wg.Go(func() { d.work(abort, q, stopping) })
	}
	select {
	case <-ctx.Done():
	case <-d.stop:
	}
	close(stopping)
	drained := make(chan struct{})
	go func() {
		wg.Wait()
		close(drained)
	}()
	deadline := d.opts.Clock.NewTimer(d.opts.DrainTimeout)
	defer deadline.Stop()
	select {
	case <-drained:
	case <-deadline.C():
		cancel()
		<-drained
	}
	d.closeQueues()
}

// closeQueues makes every later push a drop and counts what is still
// queued as dropped.
func (d *Dispatcher) closeQueues() {
	for _, q := range d.queues {
		q.mu.Lock()
		q.closed = true
		for left := len(q.ch); left > 0; left-- {
			<-q.ch
			d.logDrop(q)
		}
		q.mu.Unlock()
	}
}

// work delivers one notifier's messages in order; once stopping is closed
// it empties the queue and returns (after abort, deliver only counts what is
// left as dropped).
func (d *Dispatcher) work(abort context.Context, q *queue, stopping <-chan struct{}) {
	for {
		select {
		case m := <-q.ch:
			d.deliver(abort, q, m)
		case <-stopping:
			for {
				select {
				case m := <-q.ch:
					d.deliver(abort, q, m)
				default:
					return
				}
			}
		}
	}
}

// deliver renders m and makes up to MaxAttempts attempts, waiting between
// them as the endpoint asked or with exponential backoff.
func (d *Dispatcher) deliver(abort context.Context, q *queue, m Message) {
	if abort.Err() != nil {
		d.logDrop(q)
		return
	}
	m.Text = d.render(q, m)
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(abort, q.n.Timeout)
		err := q.n.Notifier.Notify(actx, m)
		cancel()
		if err == nil {
			q.sent.Add(1)
			return
		}
		retry, after := retryable(err, d.opts.Clock.Now())
		if retry && attempt < d.opts.MaxAttempts && rollout.Sleep(abort, d.opts.Clock, d.wait(attempt, after)) == nil {
			q.retries.Add(1)
			continue
		}
		q.failed.Add(1)
		d.opts.Logger.Warn("notification not delivered", "notifier", q.n.Name, "rollout", m.Rollout,
			"reason", m.Event.Reason, "attempts", attempt, "err", err)
		return
	}
}

// render returns the notifier's text for m. A template that fails on this
// message falls back to the default text: the team still hears of a
// rollback, and the log says the template needs fixing.
func (d *Dispatcher) render(q *queue, m Message) string {
	if q.n.Template == nil {
		return DefaultText(m)
	}
	text, err := q.n.Template.Render(m)
	if err != nil {
		d.opts.Logger.Warn("notification template failed; sending the default text", "notifier", q.n.Name, "err", err)
		return DefaultText(m)
	}
	return text
}

// wait is the pause before the attempt after the given one: what the
// endpoint asked for, else Backoff doubled per attempt; MaxBackoff at most.
func (d *Dispatcher) wait(attempt int, asked time.Duration) time.Duration {
	w := asked
	if w <= 0 {
		w = d.opts.Backoff << min(attempt-1, 30)
	}
	if w <= 0 || w > d.opts.MaxBackoff {
		w = d.opts.MaxBackoff
	}
	return w
}

// Stats counts one notifier's messages since the Dispatcher was made.
type Stats struct {
	// Name of the notifier.
	Name string
	// Sent counts messages the endpoint accepted.
	Sent uint64
	// Failed counts messages given up on after their attempts.
	Failed uint64
	// Dropped counts messages never attempted: pushed out of a full queue,
	// or left when Run stopped.
	Dropped uint64
	// Retries counts attempts after the first.
	Retries uint64
}

// Stats returns the counters of every notifier, in the order given to
// NewDispatcher.
func (d *Dispatcher) Stats() []Stats {
	out := make([]Stats, 0, len(d.queues))
	for _, q := range d.queues {
		out = append(out, Stats{Name: q.n.Name, Sent: q.sent.Load(), Failed: q.failed.Load(), Dropped: q.dropped.Load(), Retries: q.retries.Load()})
	}
	return out
}
