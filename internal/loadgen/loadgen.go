// Package loadgen sends HTTP requests at a constant rate and summarises what
// came back. It is a thin layer over vegeta's library
// (github.com/tsenart/vegeta/v12/lib), used by `pipit loadtest` and by the
// demo to keep traffic flowing through a rollout.
package loadgen

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"

	"github.com/pipit-dev/pipit/internal/spec"
)

// DefaultTimeout is the per-request timeout used when Config.Timeout is zero.
const DefaultTimeout = 10 * time.Second

// maxErrors bounds Summary.Errors: a long run against a failing target would
// otherwise keep every distinct message it ever saw.
const maxErrors = 10

// Config describes one run: which request to send, how often and how long.
type Config struct {
	// URL is the absolute http or https address to request.
	URL string
	// Method is the HTTP method; empty means GET.
	Method string
	// Rate is the number of requests started per second.
	Rate int
	// Duration is how long to keep starting requests. Cancelling the context
	// passed to Run ends the run earlier.
	Duration time.Duration
	// Headers are sent with every request; a "Host" header sets the Host the
	// request is addressed to, which host-based routing relies on.
	Headers http.Header
	// Timeout bounds each request, from dialling to reading the body; zero
	// means DefaultTimeout.
	Timeout time.Duration
	// Body is sent with every request; nil sends none.
	Body []byte
}

// Validate reports the first setting that cannot work, by the rules of
// package loadconfig, which spec validation applies too.
func (c Config) Validate() error {
	s := spec.LoadSettings{URL: c.URL, Method: c.Method, Rate: c.Rate, Duration: c.Duration, Timeout: c.Timeout, Headers: c.Headers}
	if err := s.Validate(); err != nil {
		return fmt.Errorf("loadgen: %w", err)
	}
	return nil
}

// Run sends requests as cfg describes until cfg.Duration has passed or ctx
// is cancelled, waits for the answers and returns their summary.
//
// Cancelling ctx is the ordinary way to end an open-ended run (the demo
// starts Run with a long Duration): requests still in flight are abandoned
// and left out of the summary, and Run returns what it has with a nil error.
// Run only fails on an invalid cfg; failed requests are counted in the
// summary instead.
func Run(ctx context.Context, cfg Config) (Summary, error) {
	if err := cfg.Validate(); err != nil {
		return Summary{}, err
	}
	method := cfg.Method
	if method == "" {
		method = http.MethodGet
	}
	timeout := cfg.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}

	client := newClient(ctx, timeout)
	// Connections kept for reuse would outlive the run by minutes.
	defer client.CloseIdleConnections()
	attacker := vegeta.NewAttacker(
		vegeta.Client(client),
		// Bodies are drained but not kept: the summary does not use them.
		vegeta.MaxBody(0),
	)
	stopped := make(chan struct{})
	defer close(stopped)
	go func() {
		select {
		case <-ctx.Done():
			attacker.Stop()
		case <-stopped:
		}
	}()

	target := vegeta.NewStaticTargeter(vegeta.Target{
		Method: method,
		URL:    cfg.URL,
		Body:   cfg.Body,
		Header: cfg.Headers.Clone(),
	})
	pacer := vegeta.ConstantPacer{Freq: cfg.Rate, Per: time.Second}

	var acc accumulator
	for res := range attacker.Attack(target, pacer, cfg.Duration, "pipit-loadgen") {
		if ctx.Err() != nil && res.Code == 0 && res.Error != "" {
			continue // aborted by the cancellation, not a failure of the target
		}
		acc.add(res)
	}
	return acc.summary(), nil
}

// newClient returns the client the attacker uses. It dials the target
// directly, ignoring HTTP_PROXY, since load meant for the target should not
// go through a forward proxy, and it ties every request to ctx so that
// cancelling a run does not wait for slow answers.
func newClient(ctx context.Context, timeout time.Duration) *http.Client {
	transport := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConnsPerHost: vegeta.DefaultConnections,
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: timeout,
	}
	return &http.Client{Timeout: timeout, Transport: withContext{ctx: ctx, next: transport}}
}

// withContext sends each request under the run's context: vegeta builds
// requests without one.
type withContext struct {
	ctx  context.Context
	next *http.Transport
}

func (t withContext) RoundTrip(r *http.Request) (*http.Response, error) {
	return t.next.RoundTrip(r.WithContext(t.ctx))
}

// CloseIdleConnections lets http.Client.CloseIdleConnections reach the
// transport underneath.
func (t withContext) CloseIdleConnections() { t.next.CloseIdleConnections() }
