// Package ofrep serves the flags pipit rolls out over OpenFeature's
// remote evaluation protocol (OFREP): single and bulk evaluation, the
// configuration providers read, and the events applications report for
// the analysis, all behind a read-only bearer token of their own.
package ofrep

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/pipit-dev/pipit/internal/controlapi"
	"github.com/pipit-dev/pipit/internal/flag"
)

// Limits of one request. An evaluation context is a few attributes and
// an event batch a few hundred events, so these leave ample room and
// refuse what is made to exhaust memory.
const (
	// MaxEvaluationBody bounds an evaluation request's body.
	MaxEvaluationBody = 64 << 10
	// MaxEventsBody bounds an event batch's body.
	MaxEventsBody = 1 << 20
	// MaxEvents is how many events one batch may carry.
	MaxEvents = 1000
	// MaxHeaderBytes bounds a request's header.
	MaxHeaderBytes = 16 << 10
)

// Flags are the flags served, looked up by key.
type Flags interface {
	// Flag is the flag of key, if a rollout serves it.
	Flag(key string) (*flag.Live, bool)
	// All are every flag served, in the order of their keys.
	All() []*flag.Live
}

// NewHandler serves OFREP over flags: POST /ofrep/v1/evaluate/flags/{key},
// POST /ofrep/v1/evaluate/flags (bulk, with an ETag), GET
// /ofrep/v1/configuration and POST /v1/flags/{key}/events. Every route needs "Authorization: Bearer
// TOKEN" with a token auth knows. log (nil discards) gets refusals at
// debug level.
func NewHandler(flags Flags, auth controlapi.Authenticator, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := server{flags: flags, log: log}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /ofrep/v1/evaluate/flags/{key}", s.evaluate)
	mux.HandleFunc("POST /ofrep/v1/evaluate/flags", s.bulk)
	mux.HandleFunc("POST /v1/flags/{key}/events", s.events)
	mux.HandleFunc("GET /ofrep/v1/configuration", s.configuration)
	return controlapi.RequireToken(auth, log, mux)
}

// NewServer returns an HTTP server for h whose timeouts and header limit
// keep slow, idle or oversized clients from holding it; errors go to log
// (nil discards them).
func NewServer(addr string, h http.Handler, log *slog.Logger) *http.Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

type server struct {
	flags Flags
	log   *slog.Logger
}

// evaluationRequest is OFREP's request body.
type evaluationRequest struct {
	Context json.RawMessage `json:"context"`
}

// bulkAnswer is OFREP's bulk answer: a success or a failure per flag.
type bulkAnswer struct {
	Flags []any `json:"flags"`
}

func (s server) evaluate(w http.ResponseWriter, r *http.Request) {
	key := r.PathValue("key")
	ctx, fail := readContext(w, r)
	if fail != nil {
		fail.Key = key
		s.write(w, fail.Status, fail)
		return
	}
	l, ok := s.flags.Flag(key)
	if !ok {
		fail := flag.NotFound(key)
		s.write(w, fail.Status, fail)
		return
	}
	res, fail := l.Evaluate(ctx)
	if fail != nil {
		s.write(w, fail.Status, fail)
		return
	}
	s.write(w, http.StatusOK, res)
}

func (s server) bulk(w http.ResponseWriter, r *http.Request) {
	ctx, fail := readContext(w, r)
	if fail != nil {
		s.write(w, fail.Status, fail)
		return
	}
	ans := bulkAnswer{Flags: []any{}}
	for _, l := range s.flags.All() {
		if res, fail := l.Evaluate(ctx); fail != nil {
			ans.Flags = append(ans.Flags, fail)
		} else {
			ans.Flags = append(ans.Flags, res)
		}
	}
	s.writeTagged(w, r, ans)
}

// MinPollingInterval is the least time between two polls of the bulk
// evaluation a provider is told to keep (OFREP's configuration): a flag's
// weight moves at a rollout's steps, seconds or minutes apart, so polling
// faster only costs the server.
const MinPollingInterval = time.Second

// configurationAnswer is OFREP's configuration: what pipit serves and how
// providers should keep its answers.
type configurationAnswer struct {
	Name         string `json:"name"`
	Capabilities struct {
		CacheInvalidation struct {
			Polling struct {
				Enabled              bool  `json:"enabled"`
				MinPollingIntervalMs int64 `json:"minPollingIntervalMs"`
			} `json:"polling"`
		} `json:"cacheInvalidation"`
		FlagEvaluation struct {
			SupportedTypes []string `json:"supportedTypes"`
		} `json:"flagEvaluation"`
		Caching struct {
			Enabled bool `json:"enabled"`
		} `json:"caching"`
	} `json:"capabilities"`
}

// configuration answers OFREP's configuration: the bulk evaluation may be
// polled (its ETag says when nothing changed); a server provider must not
// cache single evaluations, whose answer a rollout's next step changes;
// and every type of value a flag's variants may hold is served.
func (s server) configuration(w http.ResponseWriter, r *http.Request) {
	var c configurationAnswer
	c.Name = "pipit"
	c.Capabilities.CacheInvalidation.Polling.Enabled = true
	c.Capabilities.CacheInvalidation.Polling.MinPollingIntervalMs = MinPollingInterval.Milliseconds()
	c.Capabilities.FlagEvaluation.SupportedTypes = []string{"boolean", "string", "int", "float", "object"}
	s.writeTagged(w, r, c)
}

// writeTagged writes v with an ETag of its body, or 304 Not Modified to a
// client whose If-None-Match names that ETag: the answer may be kept if
// checked again first.
func (s server) writeTagged(w http.ResponseWriter, r *http.Request, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		s.write(w, http.StatusInternalServerError, flag.Failure{ErrorCode: flag.ErrGeneral, ErrorDetails: "encoding the answer failed"})
		return
	}
	sum := sha256.Sum256(body)
	etag := `"` + hex.EncodeToString(sum[:16]) + `"`
	w.Header().Set("ETag", etag)
	w.Header().Set("Cache-Control", "no-cache")
	if etagMatches(r.Header.Values("If-None-Match"), etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	s.writeBody(w, http.StatusOK, body)
}

// etagMatches reports whether an If-None-Match header lists etag, weakly
// compared (RFC 9110), or is "*".
func etagMatches(headers []string, etag string) bool {
	for _, h := range headers {
		for tag := range strings.SplitSeq(h, ",") {
			tag = strings.TrimPrefix(strings.TrimSpace(tag), "W/")
			if tag == etag || tag == "*" {
				return true
			}
		}
	}
	return false
}

// readContext reads an evaluation request's context: a JSON object, or
// nothing. A body that is not JSON is PARSE_ERROR; a context that is not
// an object, INVALID_CONTEXT; a body over the limit, 413.
func readContext(w http.ResponseWriter, r *http.Request) (map[string]any, *flag.Failure) {
	var req evaluationRequest
	if err := decode(w, r, MaxEvaluationBody, &req); err != nil {
		return nil, err
	}
	ctx := map[string]any{}
	if len(req.Context) == 0 || bytes.Equal(req.Context, []byte("null")) {
		return ctx, nil
	}
	if err := json.Unmarshal(req.Context, &ctx); err != nil {
		return nil, &flag.Failure{ErrorCode: flag.ErrInvalidContext, ErrorDetails: "context must be a JSON object", Status: http.StatusBadRequest}
	}
	return ctx, nil
}

// decode reads one JSON value of at most limit bytes into v; an empty
// body is an empty request.
func decode(w http.ResponseWriter, r *http.Request, limit int64, v any) *flag.Failure {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, limit))
	err := dec.Decode(v)
	if err == nil {
		if _, extra := dec.Token(); extra != io.EOF {
			err = errors.New("more than one JSON value")
		}
	}
	var tooBig *http.MaxBytesError
	switch {
	case err == nil, errors.Is(err, io.EOF):
		return nil
	case errors.As(err, &tooBig):
		return &flag.Failure{ErrorCode: flag.ErrGeneral, ErrorDetails: "request body over the limit", Status: http.StatusRequestEntityTooLarge}
	}
	return &flag.Failure{ErrorCode: flag.ErrParse, ErrorDetails: "request body is not a JSON object: " + err.Error(), Status: http.StatusBadRequest}
}

// eventBatch is the body of POST /v1/flags/{key}/events.
type eventBatch struct {
	Events []flag.Event `json:"events"`
}

// eventsAccepted answers a batch recorded whole.
type eventsAccepted struct {
	Accepted int `json:"accepted"`
}

func (s server) events(w http.ResponseWriter, r *http.Request) {
	key := r.PathValue("key")
	var b eventBatch
	if fail := decode(w, r, MaxEventsBody, &b); fail != nil {
		fail.Key = key
		s.write(w, fail.Status, fail)
		return
	}
	l, ok := s.flags.Flag(key)
	if !ok {
		fail := flag.NotFound(key)
		s.write(w, fail.Status, fail)
		return
	}
	if len(b.Events) > MaxEvents {
		s.write(w, http.StatusRequestEntityTooLarge, flag.Failure{Key: key, ErrorCode: flag.ErrGeneral,
			ErrorDetails: "a batch carries at most 1000 events"})
		return
	}
	// The batch is checked whole before any of it counts, so that a
	// client that resends it after a refusal counts nothing twice.
	for i, e := range b.Events {
		if err := flag.CheckEvent(e); err != nil {
			s.write(w, http.StatusBadRequest, flag.Failure{Key: key, ErrorCode: flag.ErrGeneral,
				ErrorDetails: "events[" + strconv.Itoa(i) + "]: " + err.Error()})
			return
		}
	}
	for _, e := range b.Events {
		_ = l.Record(e) // checked above
	}
	s.write(w, http.StatusAccepted, eventsAccepted{Accepted: len(b.Events)})
}

func (s server) write(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		s.log.Error("OFREP: encoding the answer failed", "err", err)
		status, body = http.StatusInternalServerError, []byte(`{"errorCode":"GENERAL"}`)
	}
	s.writeBody(w, status, body)
}

func (s server) writeBody(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	if h.Get("Cache-Control") == "" {
		h.Set("Cache-Control", "no-store")
	}
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
