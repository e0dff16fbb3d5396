package controlapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/rollout"
)

// MaxCommandBody bounds the body of a command request; a real one is a few
// hundred bytes, so anything larger is refused before it is read.
const MaxCommandBody = 64 << 10

// RolloutList is the body of GET /v1/rollouts. The list sits in an object
// so that fields can be added without breaking clients.
type RolloutList struct {
	Rollouts []RolloutView `json:"rollouts"`
}

// EventList is the body of GET /v1/rollouts/{name}/events.
type EventList struct {
	Events []v1alpha1.Event `json:"events"`
}

// Command turns the request into an engine command, refusing what no
// rollout could accept: an unknown kind, a deploy without a version, a
// canary or a weight given to a command that takes none.
func (r CommandRequest) Command() (rollout.Command, error) {
	switch r.Kind {
	case rollout.CommandDeploy:
		if r.Canary == nil || r.Canary.Version == "" {
			return rollout.Command{}, errors.New("deploy needs canary.version")
		}
	case rollout.CommandSetWeight:
		if r.Weight == nil {
			return rollout.Command{}, errors.New("set-weight needs weight")
		}
	case rollout.CommandPause, rollout.CommandResume, rollout.CommandPromote, rollout.CommandPromoteFull,
		rollout.CommandAbort, rollout.CommandRetry, rollout.CommandApprove, rollout.CommandReject, rollout.CommandUndo:
	case "":
		return rollout.Command{}, errors.New("kind is required")
	default:
		return rollout.Command{}, fmt.Errorf("unknown command kind %q", r.Kind)
	}
	if r.Canary != nil && r.Kind != rollout.CommandDeploy {
		return rollout.Command{}, fmt.Errorf("canary is only accepted by deploy, not %s", r.Kind)
	}
	if r.Weight != nil && r.Kind != rollout.CommandSetWeight {
		return rollout.Command{}, fmt.Errorf("weight is only accepted by set-weight, not %s", r.Kind)
	}
	return rollout.Command{Kind: r.Kind, Canary: r.Canary, Weight: r.Weight, Actor: r.Actor, Reason: r.Reason}, nil
}

// NewHandler serves the control API over b, and the web dashboard under
// /ui/. Every /v1 route needs the header "Authorization: Bearer <token>"
// with a token auth knows, or the session cookie of a dashboard that logged
// in with one (POST /ui/login), plus its CSRF token on anything but GET;
// the token's role must allow the route: reading needs viewer, commands and reload
// operator, tokens and cookie keys admin. POST /v1/keys/rotate is served
// when b is a KeyRotator, GET /v1/rollouts/{name}/samples when it is a
// SampleReader, POST /v1/reload when it is a Reloader, /v1/tokens when it
// is a TokenKeeper. /healthz, and /metrics when metrics is not nil, need
// no token so that probes and scrapers work without a secret. Failed
// requests are logged to log; nil discards them.
func NewHandler(b Backend, auth Authenticator, metrics http.Handler, log *slog.Logger) http.Handler {
	return newHandler(b, auth, metrics, log, newSessions(), MaxStreams, "")
}

// newHandler is NewHandler keeping the dashboard's sessions in sess and
// serving at most maxStreams event streams at once. With autoLogin set, a
// dashboard without a session gets one for that token, without a login
// (see NewLocalDashboard).
func newHandler(b Backend, auth Authenticator, metrics http.Handler, log *slog.Logger, sess *sessions, maxStreams int, autoLogin string) handler {
	s := server{b: b, log: orDiscard(log), sessions: sess, cross: http.NewCrossOriginProtection(),
		streams: make(chan struct{}, maxStreams), feeds: newFeeds(b, orDiscard(log)), autoLogin: autoLogin}
	v1 := http.NewServeMux()
	v1.HandleFunc("GET /v1/rollouts", s.as(RoleViewer, s.list))
	v1.HandleFunc("GET /v1/rollouts/{name}", s.as(RoleViewer, s.get))
	v1.HandleFunc("GET /v1/rollouts/{name}/events", s.as(RoleViewer, s.events))
	v1.HandleFunc("POST /v1/rollouts/{name}/commands", s.as(RoleOperator, s.command))
	v1.HandleFunc("GET /v1/whoami", s.as(RoleViewer, s.whoami))
	v1.HandleFunc("GET /v1/rollouts/{name}/stream", s.as(RoleViewer, s.stream))
	if kr, ok := b.(KeyRotator); ok {
		s.keys = kr
		v1.HandleFunc("POST /v1/keys/rotate", s.as(RoleAdmin, s.rotateKeys))
	}
	if sr, ok := b.(SampleReader); ok {
		s.samples = sr
		v1.HandleFunc("GET /v1/rollouts/{name}/samples", s.as(RoleViewer, s.listSamples))
	}
	if rl, ok := b.(Reloader); ok {
		s.reloader = rl
		v1.HandleFunc("POST /v1/reload", s.as(RoleOperator, s.reload))
	}
	if tk, ok := b.(TokenKeeper); ok {
		s.tokens = tk
		v1.HandleFunc("GET /v1/tokens", s.as(RoleAdmin, s.listTokens))
		v1.HandleFunc("POST /v1/tokens", s.as(RoleAdmin, s.createToken))
		v1.HandleFunc("DELETE /v1/tokens/{name}", s.as(RoleAdmin, s.revokeToken))
	}

	mux := http.NewServeMux()
	// Authentication comes before routing, so that without a token one
	// cannot even learn which routes exist.
	mux.Handle("/v1/", s.requireToken(auth, v1))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		s.writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	if metrics != nil {
		mux.Handle("GET /metrics", metrics)
	}
	s.serveDashboard(mux, auth)
	return handler{Handler: mux, feeds: s.feeds}
}

// NewServer returns an HTTP server for h with timeouts that keep slow or
// idle clients from holding connections. The write timeout leaves room for
// a command, which waits until the engine has acted on it (an event
// stream sets its own deadline for each write). Shutting the server down
// ends the event streams of a handler made by NewHandler. The server's own
// errors (such as failed TLS handshakes) go to log as warnings; nil
// discards them.
func NewServer(addr string, h http.Handler, log *slog.Logger) *http.Server {
	srv := &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(orDiscard(log).Handler(), slog.LevelWarn),
	}
	if api, ok := h.(handler); ok {
		srv.RegisterOnShutdown(api.feeds.close)
	}
	return srv
}

// orDiscard is log, or a logger that discards when there is none: the
// control API never writes to the process-wide logger.
func orDiscard(log *slog.Logger) *slog.Logger {
	if log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return log
}

// bearer extracts the token of an "Authorization: Bearer <token>" header.
// The scheme is case-insensitive (RFC 9110).
func bearer(header string) (string, bool) {
	scheme, token, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

// server holds the handlers of the /v1 routes.
type server struct {
	b       Backend
	keys    KeyRotator   // nil: b signs no cookies
	samples SampleReader // nil: b keeps no samples
	// reloader is nil when b has no files to read again.
	reloader Reloader
	tokens   TokenKeeper // nil: b keeps no named tokens
	log      *slog.Logger
	// sessions are the dashboard's logins.
	sessions *sessions
	// cross refuses requests from other sites to a cookie's holder.
	cross *http.CrossOriginProtection
	// streams holds a slot per open event stream, MaxStreams at most.
	streams chan struct{}
	// feeds read the rollouts that streams follow.
	feeds *feeds
	// autoLogin is the token a dashboard without a session is given a
	// session for; empty asks for a login.
	autoLogin string
}

// handler is the control API's handler; NewServer ends its event streams
// when the server shuts down, which would otherwise wait for them.
type handler struct {
	http.Handler
	feeds *feeds
}

func (s server) list(w http.ResponseWriter, r *http.Request) {
	views, err := s.b.Rollouts(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if views == nil {
		views = []RolloutView{}
	}
	s.writeJSON(w, http.StatusOK, RolloutList{Rollouts: views})
}

func (s server) get(w http.ResponseWriter, r *http.Request) {
	v, err := s.b.Rollout(r.Context(), r.PathValue("name"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.writeJSON(w, http.StatusOK, v)
}

func (s server) events(w http.ResponseWriter, r *http.Request) {
	limit := 0
	if q := r.URL.Query().Get("limit"); q != "" {
		n, err := strconv.Atoi(q)
		if err != nil || n < 0 {
			s.writeError(w, http.StatusBadRequest, fmt.Sprintf("limit %q: want a whole number, 0 or more", q))
			return
		}
		limit = n
	}
	evs, err := s.b.Events(r.Context(), r.PathValue("name"), limit)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if evs == nil {
		evs = []v1alpha1.Event{}
	}
	s.writeJSON(w, http.StatusOK, EventList{Events: evs})
}

// MaxMetricName bounds the metric a samples query names; metric names are
// DNS labels or close to it, so anything longer names none.
const MaxMetricName = 253

// listSamples serves GET /v1/rollouts/{name}/samples?metric=NAME&since=RFC3339;
// both parameters are optional.
func (s server) listSamples(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	for key := range q {
		if key != "metric" && key != "since" {
			s.writeError(w, http.StatusBadRequest, fmt.Sprintf("unknown query parameter %q: want metric or since", key))
			return
		}
	}
	metric := q.Get("metric")
	if len(metric) > MaxMetricName {
		s.writeError(w, http.StatusBadRequest, fmt.Sprintf("metric: %d characters is more than the %d a metric name may have", len(metric), MaxMetricName))
		return
	}
	var since time.Time
	if v := q.Get("since"); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			s.writeError(w, http.StatusBadRequest, fmt.Sprintf("since %q: want an RFC 3339 time such as 2026-07-01T12:00:00Z", v))
			return
		}
		since = t
	}
	samples, err := s.samples.Samples(r.Context(), r.PathValue("name"), metric, since)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if samples == nil {
		samples = []Sample{}
	}
	s.writeJSON(w, http.StatusOK, SampleList{Samples: samples})
}

func (s server) command(w http.ResponseWriter, r *http.Request) {
	var req CommandRequest
	if status, err := decodeStrict(w, r, &req); err != nil {
		s.writeError(w, status, err.Error())
		return
	}
	cmd, err := req.Command()
	if err != nil {
		s.writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	// The history names the token the request authenticated with, never
	// a name the client gives; its reason stays.
	id, _ := IdentityOf(r.Context())
	cmd.Actor = id.Name
	v, err := s.b.Submit(r.Context(), r.PathValue("name"), cmd)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.writeJSON(w, http.StatusOK, v)
}

// rotateKeys rotates the sticky cookies' key. It takes no body.
func (s server) rotateKeys(w http.ResponseWriter, r *http.Request) {
	rot, err := s.keys.RotateCookieKeys(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if rot.Rollouts == nil {
		rot.Rollouts = []KeyGrace{}
	}
	s.writeJSON(w, http.StatusOK, rot)
}

// reload makes the daemon read its rollout files again. It takes no
// body; files that are refused are answered 422 with why.
func (s server) reload(w http.ResponseWriter, r *http.Request) {
	res, err := s.reloader.Reload(r.Context())
	if errors.Is(err, ErrInvalidConfig) {
		s.writeError(w, http.StatusUnprocessableEntity, err.Error())
		return
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.writeJSON(w, http.StatusOK, res)
}

// decodeStrict reads exactly one JSON object of known fields from a body
// of at most MaxCommandBody bytes, and says which status a failure earns.
func decodeStrict(w http.ResponseWriter, r *http.Request, into any) (int, error) {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, MaxCommandBody))
	dec.DisallowUnknownFields()
	err := dec.Decode(into)
	if err == nil && dec.Decode(&struct{}{}) != io.EOF {
		err = errors.New("body holds more than one JSON value")
	}
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return http.StatusRequestEntityTooLarge, fmt.Errorf("body larger than %d bytes", tooBig.Limit)
	case errors.Is(err, io.EOF):
		return http.StatusBadRequest, errors.New("empty body: want a JSON command")
	case err != nil:
		return http.StatusBadRequest, fmt.Errorf("invalid command: %v", err)
	}
	return 0, nil
}

// fail answers a Backend error: the caller's mistakes with their message,
// anything else with a generic one, since internal errors may say more
// about the host than a client should learn.
func (s server) fail(w http.ResponseWriter, r *http.Request, err error) {
	var refused *RefusedError
	switch {
	case errors.Is(err, ErrNotFound), errors.Is(err, ErrTokenNotFound):
		s.writeError(w, http.StatusNotFound, err.Error())
	case errors.As(err, &refused):
		s.writeError(w, http.StatusConflict, refused.Reason)
	default:
		s.log.Error("control API request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		s.writeError(w, http.StatusInternalServerError, "internal error; see the daemon's log")
	}
}

func (s server) writeError(w http.ResponseWriter, status int, msg string) {
	s.writeJSON(w, status, ErrorResponse{Error: msg})
}

func (s server) writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		s.log.Error("control API: encoding the answer failed", "err", err)
		status = http.StatusInternalServerError
		body = []byte(`{"error":"internal error; see the daemon's log"}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}
