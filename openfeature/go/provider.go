// Package pipit is an OpenFeature provider for Go that evaluates the
// flags pipit rolls out (pipit up --ofrep) over OFREP, and reports what
// the application tracks — successes, errors with their latency,
// conversions — and the evaluations that failed in the application as
// events, which pipit's analysis judges each variant by. It is a module
// of its own so that applications do not pull in pipit's dependencies.
package pipit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	of "github.com/open-feature/go-sdk/openfeature"
)

// Event kinds pipit counts; a tracked event of another name is a
// conversion (a goal reached).
const (
	EventSuccess    = "success"
	EventError      = "error"
	EventConversion = "conversion"
)

// Defaults of Options.
const (
	DefaultTimeout       = 2 * time.Second
	DefaultFlushInterval = 200 * time.Millisecond
	// maxRemembered bounds the users whose flags the provider remembers
	// to send their tracked events to.
	maxRemembered = 100_000
	// maxQueued bounds the events waiting to be sent; more are dropped.
	maxQueued = 10_000
	// maxBatch is the most events pipit takes in one request.
	maxBatch = 1000
)

// Options configure a Provider.
type Options struct {
	// URL is pipit's OFREP listener, such as http://127.0.0.1:8016.
	URL string
	// Token is the OFREP token (the state directory's ofrep-token).
	Token string
	// Timeout bounds each request to pipit; default DefaultTimeout.
	Timeout time.Duration
	// FlushInterval is how often tracked events are sent; default
	// DefaultFlushInterval.
	FlushInterval time.Duration
}

// Provider evaluates flags over OFREP and sends events in the
// background. Create it with New; Shutdown (the SDK calls it) sends what
// is queued.
type Provider struct {
	opts   Options
	client http.Client

	mu     sync.Mutex
	served map[string]map[string]string // targetingKey: flag: variant
	queue  map[string][]event           // flag: events to send
	queued int
	// dropped counts events dropped with the queue full or pipit down.
	dropped int

	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// event is one outcome, as pipit's events endpoint takes it.
type event struct {
	TargetingKey string  `json:"targetingKey"`
	Kind         string  `json:"kind"`
	LatencyMs    float64 `json:"latencyMs,omitempty"`
	Variant      string  `json:"variant,omitempty"`
	Goal         string  `json:"goal,omitempty"`
}

// New returns a provider of opts, sending events until Shutdown.
func New(opts Options) *Provider {
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.FlushInterval <= 0 {
		opts.FlushInterval = DefaultFlushInterval
	}
	opts.URL = strings.TrimSuffix(opts.URL, "/")
	p := &Provider{opts: opts, client: http.Client{Timeout: opts.Timeout},
		served: map[string]map[string]string{}, queue: map[string][]event{},
		stop: make(chan struct{}), done: make(chan struct{})}
	go p.sendLoop()
	return p
}

// Metadata implements of.FeatureProvider.
func (p *Provider) Metadata() of.Metadata { return of.Metadata{Name: "pipit"} }

// Hooks implements of.FeatureProvider: none.
func (p *Provider) Hooks() []of.Hook { return nil }

// Shutdown sends the events queued and stops (of.StateHandler).
func (p *Provider) Shutdown() {
	p.once.Do(func() { close(p.stop) })
	<-p.done
}

// Init implements of.StateHandler: nothing to prepare.
func (p *Provider) Init(of.EvaluationContext) error { return nil }

// Dropped is how many events could not be sent.
func (p *Provider) Dropped() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.dropped
}

// answer is OFREP's answer, success or failure.
type answer struct {
	Value        json.RawMessage `json:"value"`
	Variant      string          `json:"variant"`
	Reason       string          `json:"reason"`
	ErrorCode    string          `json:"errorCode"`
	ErrorDetails string          `json:"errorDetails"`
	Metadata     map[string]any  `json:"metadata"`
}

// evaluate asks pipit for flag in flatCtx, remembering which variant the
// user was served.
func (p *Provider) evaluate(ctx context.Context, flag string, flatCtx of.FlattenedContext) (answer, of.ProviderResolutionDetail) {
	body, err := json.Marshal(map[string]any{"context": map[string]any(flatCtx)})
	if err != nil {
		return answer{}, failed(of.NewInvalidContextResolutionError(err.Error()))
	}
	status, out, err := p.post(ctx, "/ofrep/v1/evaluate/flags/"+url.PathEscape(flag), body)
	if err != nil {
		return answer{}, failed(of.NewGeneralResolutionError("pipit: " + err.Error()))
	}
	var a answer
	if err := json.Unmarshal(out, &a); err != nil {
		return answer{}, failed(of.NewParseErrorResolutionError(fmt.Sprintf("pipit answered %d: %s", status, clip(out))))
	}
	if a.ErrorCode != "" {
		return a, failed(resolutionError(a.ErrorCode, a.ErrorDetails))
	}
	if key, _ := flatCtx[of.TargetingKey].(string); key != "" {
		p.remember(key, flag, a.Variant)
	}
	return a, of.ProviderResolutionDetail{Reason: of.Reason(a.Reason), Variant: a.Variant, FlagMetadata: a.Metadata}
}

func failed(e of.ResolutionError) of.ProviderResolutionDetail {
	return of.ProviderResolutionDetail{ResolutionError: e, Reason: of.ErrorReason}
}

// resolutionError is OFREP's error code as OpenFeature's.
func resolutionError(code, details string) of.ResolutionError {
	switch code {
	case "FLAG_NOT_FOUND":
		return of.NewFlagNotFoundResolutionError(details)
	case "TARGETING_KEY_MISSING":
		return of.NewTargetingKeyMissingResolutionError(details)
	case "INVALID_CONTEXT":
		return of.NewInvalidContextResolutionError(details)
	case "PARSE_ERROR":
		return of.NewParseErrorResolutionError(details)
	}
	return of.NewGeneralResolutionError(code + ": " + details)
}

// post sends body to path with the token and returns the answer.
func (p *Provider) post(ctx context.Context, path string, body []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.opts.URL+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+p.opts.Token)
	resp, err := p.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, out, err
}

func clip(b []byte) string {
	if len(b) > 200 {
		return string(b[:200]) + "…"
	}
	return string(b)
}

// remember notes that the user of key was served variant of flag.
func (p *Provider) remember(key, flag, variant string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	flags := p.served[key]
	if flags == nil {
		if len(p.served) >= maxRemembered {
			clear(p.served) // start over rather than grow
		}
		flags = map[string]string{}
		p.served[key] = flags
	}
	flags[flag] = variant
}

// typed turns an evaluation into a value of type T, reporting a value
// of another type as an error of the variant, as pipit should judge it.
func typed[T any](p *Provider, ctx context.Context, flag string, def T, flatCtx of.FlattenedContext, conv func(json.RawMessage) (T, error)) of.GenericResolutionDetail[T] {
	a, detail := p.evaluate(ctx, flag, flatCtx)
	if detail.ResolutionError != (of.ResolutionError{}) {
		return of.GenericResolutionDetail[T]{Value: def, ProviderResolutionDetail: detail}
	}
	v, err := conv(a.Value)
	if err != nil {
		if key, _ := flatCtx[of.TargetingKey].(string); key != "" {
			p.enqueue(flag, event{TargetingKey: key, Kind: EventError, Variant: a.Variant})
		}
		return of.GenericResolutionDetail[T]{Value: def, ProviderResolutionDetail: failed(of.NewTypeMismatchResolutionError(
			fmt.Sprintf("flag %s: variant %s is %s: %v", flag, a.Variant, clip(a.Value), err)))}
	}
	return of.GenericResolutionDetail[T]{Value: v, ProviderResolutionDetail: detail}
}

func decodeAs[T any](raw json.RawMessage) (T, error) {
	var v T
	err := json.Unmarshal(raw, &v)
	return v, err
}

// BooleanEvaluation implements of.FeatureProvider.
func (p *Provider) BooleanEvaluation(ctx context.Context, flag string, def bool, flatCtx of.FlattenedContext) of.BoolResolutionDetail {
	return typed(p, ctx, flag, def, flatCtx, decodeAs[bool])
}

// StringEvaluation implements of.FeatureProvider.
func (p *Provider) StringEvaluation(ctx context.Context, flag string, def string, flatCtx of.FlattenedContext) of.StringResolutionDetail {
	return typed(p, ctx, flag, def, flatCtx, decodeAs[string])
}

// FloatEvaluation implements of.FeatureProvider.
func (p *Provider) FloatEvaluation(ctx context.Context, flag string, def float64, flatCtx of.FlattenedContext) of.FloatResolutionDetail {
	return typed(p, ctx, flag, def, flatCtx, decodeAs[float64])
}

// IntEvaluation implements of.FeatureProvider: a whole number only.
func (p *Provider) IntEvaluation(ctx context.Context, flag string, def int64, flatCtx of.FlattenedContext) of.IntResolutionDetail {
	return typed(p, ctx, flag, def, flatCtx, decodeAs[int64])
}

// ObjectEvaluation implements of.FeatureProvider.
func (p *Provider) ObjectEvaluation(ctx context.Context, flag string, def any, flatCtx of.FlattenedContext) of.InterfaceResolutionDetail {
	return typed(p, ctx, flag, def, flatCtx, func(raw json.RawMessage) (any, error) {
		if len(raw) == 0 || raw[0] != '{' {
			return nil, errors.New("not an object")
		}
		return decodeAs[map[string]any](raw)
	})
}

// Track implements of.Tracker: the event goes to every flag the user was
// served, or to the flag named by the "flag" attribute. A name of
// "success" or "error" is a request's outcome, its value the latency in
// milliseconds; any other name is a conversion to the goal of that name
// (spec.analysis.goals).
func (p *Provider) Track(_ context.Context, name string, evalCtx of.EvaluationContext, details of.TrackingEventDetails) {
	key := evalCtx.TargetingKey()
	if key == "" {
		return
	}
	e := event{TargetingKey: key, Kind: EventConversion, Goal: name}
	if name == EventSuccess || name == EventError {
		e = event{TargetingKey: key, Kind: name, LatencyMs: max(details.Value(), 0)}
	}
	if flag, ok := details.Attribute("flag").(string); ok && flag != "" {
		p.enqueue(flag, e)
		return
	}
	p.mu.Lock()
	flags := make(map[string]string, len(p.served[key]))
	for f, v := range p.served[key] {
		flags[f] = v
	}
	p.mu.Unlock()
	for flag, variant := range flags {
		e.Variant = variant
		p.enqueue(flag, e)
	}
}

// enqueue queues e for flag, dropping it when the queue is full.
func (p *Provider) enqueue(flag string, e event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.queued >= maxQueued {
		p.dropped++
		return
	}
	p.queue[flag] = append(p.queue[flag], e)
	p.queued++
}

// sendLoop sends the queue every flush interval, and once more at the
// end.
func (p *Provider) sendLoop() {
	defer close(p.done)
	t := time.NewTicker(p.opts.FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			p.flush()
			return
		case <-t.C:
			p.flush()
		}
	}
}

// flush sends the events queued, in batches per flag.
func (p *Provider) flush() {
	p.mu.Lock()
	queue := p.queue
	p.queue, p.queued = map[string][]event{}, 0
	p.mu.Unlock()
	for flag, events := range queue {
		for len(events) > 0 {
			n := min(len(events), maxBatch)
			if !p.send(flag, events[:n]) {
				p.mu.Lock()
				p.dropped += n
				p.mu.Unlock()
			}
			events = events[n:]
		}
	}
}

// send posts one batch; false when pipit did not take it.
func (p *Provider) send(flag string, events []event) bool {
	body, err := json.Marshal(map[string]any{"events": events})
	if err != nil {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), p.opts.Timeout)
	defer cancel()
	status, _, err := p.post(ctx, "/v1/flags/"+url.PathEscape(flag)+"/events", body)
	return err == nil && status == http.StatusAccepted
}

var (
	_ of.FeatureProvider = (*Provider)(nil)
	_ of.Tracker         = (*Provider)(nil)
	_ of.StateHandler    = (*Provider)(nil)
)
