package controlapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/engine"
	"github.com/pipit-dev/pipit/internal/rollout"
)

const testToken = "s3cret-token-value"

// fakeBackend keeps rollouts in memory. A rollout named "broken" fails
// with an internal error on every call.
type fakeBackend struct {
	mu        sync.Mutex
	views     map[string]RolloutView
	events    map[string][]v1alpha1.Event
	submitted []rollout.Command
	gotLimit  int
	rotations int
	// rotateErr, when set, is what RotateCookieKeys fails with.
	rotateErr error
	reloads   int
	// reloadErr, when set, is what Reload fails with.
	reloadErr error
}

// invalidFiles is a refused reload, as the standalone daemon's
// ConfigError is.
type invalidFiles struct{ msg string }

func (e invalidFiles) Error() string        { return e.msg }
func (e invalidFiles) Is(target error) bool { return target == ErrInvalidConfig }

func (f *fakeBackend) Reload(context.Context) (ReloadResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reloads++
	if f.reloadErr != nil {
		return ReloadResult{}, f.reloadErr
	}
	return ReloadResult{Added: []string{"api"}, Removed: []string{}, Changed: []RolloutChange{{Name: "web", Fields: []string{"spec.strategy"}}}}, nil
}

func newFake() *fakeBackend {
	return &fakeBackend{
		views: map[string]RolloutView{
			"web": {Name: "web", Steps: []string{"setWeight 5%", "pause 10m0s"}, Status: v1alpha1.RolloutStatus{
				Phase: v1alpha1.PhaseProgressing, CanaryWeight: 5000,
				Stable: &v1alpha1.VersionRef{Version: "v1"}, Canary: &v1alpha1.VersionRef{Version: "v2"},
			}},
			"api": {Name: "api", Status: v1alpha1.RolloutStatus{Phase: v1alpha1.PhaseIdle}},
		},
		events: map[string][]v1alpha1.Event{
			"web": {{Reason: "Started", Message: "one"}, {Reason: "WeightChanged", Message: "two"}, {Reason: "Paused", Message: "three"}},
		},
	}
}

var errBroken = errors.New("disk on fire at /var/lib/secret")

func (f *fakeBackend) Rollouts(context.Context) ([]RolloutView, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return []RolloutView{f.views["api"], f.views["web"]}, nil
}

func (f *fakeBackend) Rollout(_ context.Context, name string) (RolloutView, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if name == "broken" {
		return RolloutView{}, errBroken
	}
	v, ok := f.views[name]
	if !ok {
		return RolloutView{}, fmt.Errorf("rollout %q: %w", name, ErrNotFound)
	}
	return v, nil
}

func (f *fakeBackend) Events(_ context.Context, name string, limit int) ([]v1alpha1.Event, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gotLimit = limit
	if _, ok := f.views[name]; !ok {
		return nil, fmt.Errorf("rollout %q: %w", name, ErrNotFound)
	}
	evs := f.events[name]
	if limit > 0 && limit < len(evs) {
		evs = evs[len(evs)-limit:]
	}
	return evs, nil
}

func (f *fakeBackend) Submit(_ context.Context, name string, cmd rollout.Command) (RolloutView, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if name == "broken" {
		return RolloutView{}, errBroken
	}
	v, ok := f.views[name]
	if !ok {
		return RolloutView{}, fmt.Errorf("rollout %q: %w", name, ErrNotFound)
	}
	if err := engine.Allowed(v.Status, cmd); err != nil {
		return RolloutView{}, &RefusedError{Reason: err.Error()}
	}
	f.submitted = append(f.submitted, cmd)
	if cmd.Kind == rollout.CommandPause {
		v.Status.Phase = v1alpha1.PhasePaused
	}
	f.views[name] = v
	return v, nil
}

var rotatedAt = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func (f *fakeBackend) RotateCookieKeys(context.Context) (KeyRotation, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.rotateErr != nil {
		return KeyRotation{}, f.rotateErr
	}
	f.rotations++
	return KeyRotation{RotatedAt: rotatedAt, Rollouts: []KeyGrace{{Name: "web", PreviousUntil: rotatedAt.Add(time.Hour)}}}, nil
}

// Samples answers what it was asked, so that a test sees how the query
// was read: one sample of the metric asked for, at since.
func (f *fakeBackend) Samples(_ context.Context, name, metric string, since time.Time) ([]Sample, error) {
	if _, err := f.Rollout(context.Background(), name); err != nil {
		return nil, err
	}
	if metric == "" {
		return nil, nil
	}
	return []Sample{{At: since, MetricResult: v1alpha1.MetricResult{Name: metric, Verdict: v1alpha1.VerdictSuccessful}}}, nil
}

func newTestServer(t *testing.T, f *fakeBackend, metrics http.Handler) *httptest.Server {
	t.Helper()
	return newLoggingTestServer(t, f, metrics, nil)
}

// newLoggingTestServer is newTestServer logging to log.
func newLoggingTestServer(t *testing.T, f *fakeBackend, metrics http.Handler, log *slog.Logger) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(NewHandler(f, SingleToken(testToken), metrics, log))
	t.Cleanup(srv.Close)
	return srv
}

// call sends a request with the test token and returns the status, the
// body and the Content-Type.
func call(t *testing.T, srv *httptest.Server, method, path, body string) (int, []byte, http.Header) {
	t.Helper()
	return callWith(t, srv, method, path, body, "Bearer "+testToken)
}

func callWith(t *testing.T, srv *httptest.Server, method, path, body, auth string) (int, []byte, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b, resp.Header
}

func errorOf(t *testing.T, body []byte) string {
	t.Helper()
	var e ErrorResponse
	if err := json.Unmarshal(body, &e); err != nil || e.Error == "" {
		t.Fatalf("body %q is not an ErrorResponse: %v", body, err)
	}
	return e.Error
}

func TestAuthRequiredOnEveryV1Route(t *testing.T) {
	srv := newTestServer(t, newFake(), nil)
	routes := []struct{ method, path string }{
		{"GET", "/v1/rollouts"},
		{"GET", "/v1/rollouts/web"},
		{"GET", "/v1/rollouts/web/events"},
		{"POST", "/v1/rollouts/web/commands"},
		{"POST", "/v1/keys/rotate"},
		{"POST", "/v1/reload"},
		{"GET", "/v1/rollouts/web/samples"},
		{"GET", "/v1/no-such-route"},
	}
	auths := []struct{ name, header, wantChallenge string }{
		{"missing", "", `Bearer realm="pipit"`},
		{"wrong token", "Bearer not-the-token", `Bearer realm="pipit", error="invalid_token"`},
		{"token prefix", "Bearer " + testToken[:5], `Bearer realm="pipit", error="invalid_token"`},
		{"token plus more", "Bearer " + testToken + "x", `Bearer realm="pipit", error="invalid_token"`},
		{"other scheme", "Basic " + testToken, `Bearer realm="pipit"`},
		{"empty bearer", "Bearer ", `Bearer realm="pipit"`},
	}
	for _, r := range routes {
		for _, a := range auths {
			t.Run(r.method+" "+r.path+" "+a.name, func(t *testing.T) {
				code, body, h := callWith(t, srv, r.method, r.path, `{"kind":"pause"}`, a.header)
				if code != http.StatusUnauthorized {
					t.Fatalf("status %d, want 401; body %s", code, body)
				}
				if got := h.Get("WWW-Authenticate"); got != a.wantChallenge {
					t.Fatalf("WWW-Authenticate %q, want %q", got, a.wantChallenge)
				}
				if strings.Contains(string(body), testToken) {
					t.Fatalf("answer %q repeats the token", body)
				}
				errorOf(t, body)
			})
		}
	}
}

// TestSamplesQuery: GET /v1/rollouts/{name}/samples hands the backend the
// metric and the time asked for, answers an empty list as [], refuses a
// query it cannot read with 400 naming the parameter, and an unknown
// rollout with 404.
func TestSamplesQuery(t *testing.T) {
	srv := newTestServer(t, newFake(), nil)
	code, body, _ := call(t, srv, "GET", "/v1/rollouts/web/samples?metric=error-rate&since=2026-07-01T14:00:00.5%2B02:00", "")
	var list SampleList
	if err := json.Unmarshal(body, &list); code != http.StatusOK || err != nil {
		t.Fatalf("status %d, %v: %s", code, err, body)
	}
	want := time.Date(2026, 7, 1, 12, 0, 0, 5e8, time.UTC)
	if len(list.Samples) != 1 || list.Samples[0].Name != "error-rate" || !list.Samples[0].At.Equal(want) {
		t.Errorf("samples = %+v, want one of error-rate at %s", list.Samples, want)
	}
	if code, body, _ := call(t, srv, "GET", "/v1/rollouts/web/samples", ""); code != http.StatusOK || string(body) != `{"samples":[]}`+"\n" {
		t.Errorf("no samples: status %d, body %q; want 200 and an empty list", code, body)
	}
	for _, tc := range []struct {
		query string
		code  int
		want  string
	}{
		{"?since=yesterday", http.StatusBadRequest, `since "yesterday": want an RFC 3339 time`},
		{"?since=2026-07-01", http.StatusBadRequest, `since "2026-07-01": want an RFC 3339 time`},
		{"?metric=" + strings.Repeat("m", MaxMetricName+1), http.StatusBadRequest, "metric: 254 characters"},
		{"?limit=5", http.StatusBadRequest, `unknown query parameter "limit": want metric or since`},
	} {
		code, body, _ := call(t, srv, "GET", "/v1/rollouts/web/samples"+tc.query, "")
		if code != tc.code || !strings.Contains(errorOf(t, body), tc.want) {
			t.Errorf("%s: status %d, %s; want %d naming %q", tc.query, code, body, tc.code, tc.want)
		}
	}
	if code, body, _ := call(t, srv, "GET", "/v1/rollouts/nope/samples", ""); code != http.StatusNotFound {
		t.Errorf("unknown rollout: status %d, %s; want 404", code, body)
	}
}

// TestRotateKeys: POST /v1/keys/rotate rotates once per call with the
// token and answers when each rollout's grace period ends; without the
// token, or with another method, nothing rotates. A backend that signs no
// cookies has no such route, and a failure is not shown.
func TestRotateKeys(t *testing.T) {
	f := newFake()
	srv := newTestServer(t, f, nil)
	for _, auth := range []string{"", "Bearer wrong"} {
		if code, _, _ := callWith(t, srv, "POST", "/v1/keys/rotate", "", auth); code != http.StatusUnauthorized {
			t.Errorf("auth %q: status %d, want 401", auth, code)
		}
	}
	if code, _, _ := call(t, srv, "GET", "/v1/keys/rotate", ""); code != http.StatusMethodNotAllowed {
		t.Errorf("GET: status %d, want 405", code)
	}
	if f.rotations != 0 {
		t.Fatalf("%d rotations without a valid request", f.rotations)
	}
	code, body, h := call(t, srv, "POST", "/v1/keys/rotate", "")
	if code != http.StatusOK || h.Get("Content-Type") != "application/json" {
		t.Fatalf("rotate: %d %q %s", code, h.Get("Content-Type"), body)
	}
	var rot KeyRotation
	if err := json.Unmarshal(body, &rot); err != nil || !rot.RotatedAt.Equal(rotatedAt) ||
		len(rot.Rollouts) != 1 || rot.Rollouts[0].Name != "web" || !rot.Rollouts[0].PreviousUntil.Equal(rotatedAt.Add(time.Hour)) {
		t.Fatalf("rotate answered %s (%v)", body, err)
	}
	if f.rotations != 1 {
		t.Fatalf("%d rotations, want 1", f.rotations)
	}

	f.rotateErr = errBroken
	code, body, _ = call(t, srv, "POST", "/v1/keys/rotate", "")
	if code != http.StatusInternalServerError || strings.Contains(string(body), "disk on fire") {
		t.Fatalf("a failed rotation: %d %s", code, body)
	}

	plain := httptest.NewServer(NewHandler(struct{ Backend }{newFake()}, SingleToken(testToken), nil, nil))
	defer plain.Close()
	if code, _, _ := call(t, plain, "POST", "/v1/keys/rotate", ""); code != http.StatusNotFound {
		t.Fatalf("a backend without keys: status %d, want 404", code)
	}
}

func TestEmptyTokenLocksTheAPI(t *testing.T) {
	srv := httptest.NewServer(NewHandler(newFake(), SingleToken(""), nil, nil))
	defer srv.Close()
	for _, auth := range []string{"", "Bearer ", "Bearer x"} {
		if code, _, _ := callWith(t, srv, "GET", "/v1/rollouts", "", auth); code != http.StatusUnauthorized {
			t.Fatalf("auth %q: status %d, want 401", auth, code)
		}
	}
}

func TestBearerSchemeIsCaseInsensitive(t *testing.T) {
	srv := newTestServer(t, newFake(), nil)
	if code, body, _ := callWith(t, srv, "GET", "/v1/rollouts", "", "bearer "+testToken); code != http.StatusOK {
		t.Fatalf("status %d: %s", code, body)
	}
}

func TestNoAuthRoutes(t *testing.T) {
	metrics := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "pipit_up 1\n") })
	srv := newTestServer(t, newFake(), metrics)
	code, body, h := callWith(t, srv, "GET", "/healthz", "", "")
	if code != http.StatusOK || h.Get("Content-Type") != "application/json" || !strings.Contains(string(body), `"ok"`) {
		t.Fatalf("healthz: %d %q %q", code, h.Get("Content-Type"), body)
	}
	code, body, _ = callWith(t, srv, "GET", "/metrics", "", "")
	if code != http.StatusOK || string(body) != "pipit_up 1\n" {
		t.Fatalf("metrics: %d %q", code, body)
	}

	bare := newTestServer(t, newFake(), nil)
	if code, _, _ := callWith(t, bare, "GET", "/metrics", "", ""); code != http.StatusNotFound {
		t.Fatalf("metrics without a handler: status %d, want 404", code)
	}
}

func TestListAndGet(t *testing.T) {
	srv := newTestServer(t, newFake(), nil)
	code, body, h := call(t, srv, "GET", "/v1/rollouts", "")
	if code != http.StatusOK || h.Get("Content-Type") != "application/json" {
		t.Fatalf("list: %d %q", code, h.Get("Content-Type"))
	}
	var list RolloutList
	if err := json.Unmarshal(body, &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Rollouts) != 2 || list.Rollouts[0].Name != "api" || list.Rollouts[1].Name != "web" {
		t.Fatalf("list = %+v", list)
	}

	code, body, _ = call(t, srv, "GET", "/v1/rollouts/web", "")
	var v RolloutView
	if err := json.Unmarshal(body, &v); code != http.StatusOK || err != nil {
		t.Fatalf("get: %d %v %s", code, err, body)
	}
	if v.Status.CanaryWeight != 5000 || v.Status.Canary.Version != "v2" || len(v.Steps) != 2 {
		t.Fatalf("get = %+v", v)
	}

	code, body, _ = call(t, srv, "GET", "/v1/rollouts/nope", "")
	if code != http.StatusNotFound || !strings.Contains(errorOf(t, body), "not found") {
		t.Fatalf("missing rollout: %d %s", code, body)
	}
}

func TestEmptyListIsAnArray(t *testing.T) {
	f := &fakeBackend{views: map[string]RolloutView{}}
	srv := httptest.NewServer(NewHandler(emptyBackend{f}, SingleToken(testToken), nil, nil))
	defer srv.Close()
	_, body, _ := call(t, srv, "GET", "/v1/rollouts", "")
	if strings.TrimSpace(string(body)) != `{"rollouts":[]}` {
		t.Fatalf("body = %s", body)
	}
	_, body, _ = call(t, srv, "GET", "/v1/rollouts/x/events", "")
	if strings.TrimSpace(string(body)) != `{"events":[]}` {
		t.Fatalf("body = %s", body)
	}
}

// emptyBackend answers nil slices, as a backend with nothing to show may.
type emptyBackend struct{ *fakeBackend }

func (emptyBackend) Rollouts(context.Context) ([]RolloutView, error) { return nil, nil }
func (emptyBackend) Events(context.Context, string, int) ([]v1alpha1.Event, error) {
	return nil, nil
}

func TestEvents(t *testing.T) {
	f := newFake()
	srv := newTestServer(t, f, nil)
	tests := []struct {
		query    string
		code     int
		messages []string
	}{
		{"", 200, []string{"one", "two", "three"}},
		{"?limit=0", 200, []string{"one", "two", "three"}},
		{"?limit=2", 200, []string{"two", "three"}},
		{"?limit=-1", 400, nil},
		{"?limit=lots", 400, nil},
	}
	for _, tt := range tests {
		code, body, _ := call(t, srv, "GET", "/v1/rollouts/web/events"+tt.query, "")
		if code != tt.code {
			t.Fatalf("%q: status %d, want %d: %s", tt.query, code, tt.code, body)
		}
		if code != 200 {
			errorOf(t, body)
			continue
		}
		var list EventList
		if err := json.Unmarshal(body, &list); err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range list.Events {
			got = append(got, e.Message)
		}
		if strings.Join(got, ",") != strings.Join(tt.messages, ",") {
			t.Fatalf("%q: events %v, want %v", tt.query, got, tt.messages)
		}
	}
	if code, _, _ := call(t, srv, "GET", "/v1/rollouts/nope/events", ""); code != http.StatusNotFound {
		t.Fatalf("events of a missing rollout: %d", code)
	}
}

func TestCommands(t *testing.T) {
	tests := []struct {
		name, rollout, body string
		code                int
		wantErr             string
	}{
		{"accepted", "web", `{"kind":"pause","actor":"ann","reason":"lunch"}`, 200, ""},
		{"refused by state", "api", `{"kind":"pause"}`, 409, "cannot pause a rollout that is Idle"},
		{"missing rollout", "nope", `{"kind":"pause"}`, 404, "not found"},
		{"unknown kind", "web", `{"kind":"explode"}`, 400, `unknown command kind "explode"`},
		{"no kind", "web", `{}`, 400, "kind is required"},
		{"unknown field", "web", `{"kind":"pause","force":true}`, 400, `unknown field "force"`},
		{"not JSON", "web", `pause please`, 400, "invalid command"},
		{"empty body", "web", ``, 400, "empty body"},
		{"two values", "web", `{"kind":"pause"}{"kind":"abort"}`, 400, "more than one"},
		{"deploy without version", "web", `{"kind":"deploy","canary":{"url":"http://127.0.0.1:1"}}`, 400, "canary.version"},
		{"canary on pause", "web", `{"kind":"pause","canary":{"version":"v3"}}`, 400, "only accepted by deploy"},
		{"weight on pause", "web", `{"kind":"pause","weight":20}`, 400, "weight is only accepted by set-weight"},
		{"set-weight without weight", "web", `{"kind":"set-weight"}`, 400, "set-weight needs weight"},
		{"set-weight of no number", "web", `{"kind":"set-weight","weight":"lots"}`, 400, "not a number of percent"},
		{"too large", "web", `{"kind":"pause","reason":"` + strings.Repeat("x", MaxCommandBody) + `"}`, 413, "larger than"},
		{"internal error", "broken", `{"kind":"pause"}`, 500, "internal error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake()
			srv := newTestServer(t, f, nil)
			code, body, h := call(t, srv, "POST", "/v1/rollouts/"+tt.rollout+"/commands", tt.body)
			if code != tt.code {
				t.Fatalf("status %d, want %d: %s", code, tt.code, body)
			}
			if h.Get("Content-Type") != "application/json" {
				t.Fatalf("Content-Type %q", h.Get("Content-Type"))
			}
			if tt.code != 200 {
				if msg := errorOf(t, body); !strings.Contains(msg, tt.wantErr) {
					t.Fatalf("error %q does not mention %q", msg, tt.wantErr)
				}
				if len(f.submitted) != 0 {
					t.Fatalf("backend applied %v", f.submitted)
				}
				return
			}
			var v RolloutView
			if err := json.Unmarshal(body, &v); err != nil || v.Status.Phase != v1alpha1.PhasePaused {
				t.Fatalf("answer %s (%v), want the paused rollout", body, err)
			}
			// The actor is the token's name, not the "ann" the client sent.
			want := rollout.Command{Kind: rollout.CommandPause, Actor: AdminName, Reason: "lunch"}
			if len(f.submitted) != 1 || f.submitted[0].Kind != want.Kind || f.submitted[0].Actor != want.Actor || f.submitted[0].Reason != want.Reason {
				t.Fatalf("backend got %+v, want %+v", f.submitted, want)
			}
		})
	}
}

func TestDeployPassesTheCanary(t *testing.T) {
	f := newFake()
	srv := newTestServer(t, f, nil)
	code, body, _ := call(t, srv, "POST", "/v1/rollouts/api/commands",
		`{"kind":"deploy","canary":{"version":"v9","url":"http://127.0.0.1:9"}}`)
	if code != 200 {
		t.Fatalf("status %d: %s", code, body)
	}
	if len(f.submitted) != 1 || f.submitted[0].Canary == nil || !reflect.DeepEqual(*f.submitted[0].Canary, v1alpha1.VersionRef{Version: "v9", URL: "http://127.0.0.1:9"}) {
		t.Fatalf("backend got %+v", f.submitted)
	}
	// A fleet's machines travel as a list.
	code, body, _ = call(t, srv, "POST", "/v1/rollouts/api/commands",
		`{"kind":"deploy","canary":{"version":"v10","urls":["http://10.0.0.7:8080","http://10.0.0.8:8080"]}}`)
	fleet := v1alpha1.VersionRef{Version: "v10", URLs: []string{"http://10.0.0.7:8080", "http://10.0.0.8:8080"}}
	if code != 200 || len(f.submitted) != 2 || !reflect.DeepEqual(*f.submitted[1].Canary, fleet) {
		t.Fatalf("status %d: %s; backend got %+v", code, body, f.submitted)
	}
}

func TestSetWeightPassesTheWeight(t *testing.T) {
	f := newFake()
	srv := newTestServer(t, f, nil)
	code, body, _ := call(t, srv, "POST", "/v1/rollouts/web/commands", `{"kind":"set-weight","weight":12.5}`)
	if code != 200 {
		t.Fatalf("status %d: %s", code, body)
	}
	if len(f.submitted) != 1 || f.submitted[0].Kind != rollout.CommandSetWeight || f.submitted[0].Weight == nil ||
		*f.submitted[0].Weight != v1alpha1.PercentOf(12.5) {
		t.Fatalf("backend got %+v", f.submitted)
	}
}

func TestInternalErrorsAreLoggedNotShown(t *testing.T) {
	var logs bytes.Buffer
	srv := newLoggingTestServer(t, newFake(), nil, slog.New(slog.NewTextHandler(&logs, nil)))
	code, body, _ := call(t, srv, "GET", "/v1/rollouts/broken", "")
	if code != http.StatusInternalServerError {
		t.Fatalf("status %d", code)
	}
	if strings.Contains(string(body), "disk on fire") {
		t.Fatalf("answer %s shows the internal error", body)
	}
	if !strings.Contains(logs.String(), "disk on fire") {
		t.Fatalf("log %q lacks the internal error", logs.String())
	}
	if strings.Contains(logs.String(), testToken) {
		t.Fatal("the log holds the token")
	}
}

func TestWrongMethod(t *testing.T) {
	srv := newTestServer(t, newFake(), nil)
	if code, _, _ := call(t, srv, "DELETE", "/v1/rollouts/web", ""); code != http.StatusMethodNotAllowed {
		t.Fatalf("DELETE: status %d, want 405", code)
	}
	if code, _, _ := call(t, srv, "GET", "/v1/rollouts/web/commands", ""); code != http.StatusMethodNotAllowed {
		t.Fatalf("GET commands: status %d, want 405", code)
	}
}

func TestNewServerHasTimeouts(t *testing.T) {
	s := NewServer("127.0.0.1:0", http.NotFoundHandler(), nil)
	if s.ReadHeaderTimeout <= 0 || s.ReadTimeout <= 0 || s.WriteTimeout <= 0 || s.IdleTimeout <= 0 {
		t.Fatalf("server without timeouts: %+v", s)
	}
	if s.WriteTimeout < 30e9 {
		t.Fatalf("write timeout %v is shorter than a command may take", s.WriteTimeout)
	}
}

// TestReload: POST /v1/reload answers what changed; files the backend
// refused are 422 with its message word for word, other failures a 500
// that hides them; a backend with no files to read again has no route.
func TestReload(t *testing.T) {
	f := newFake()
	srv := newTestServer(t, f, nil)
	code, body, _ := call(t, srv, "POST", "/v1/reload", "")
	var res ReloadResult
	if err := json.Unmarshal(body, &res); code != http.StatusOK || err != nil {
		t.Fatalf("reload: %d %s (%v)", code, body, err)
	}
	if len(res.Added) != 1 || res.Added[0] != "api" || len(res.Changed) != 1 || res.Changed[0].Fields[0] != "spec.strategy" || res.Removed == nil {
		t.Errorf("reload answered %+v", res)
	}
	const refusal = "web.yaml:7:5: spec.strategy.steps[0].setWeight: 500 is more than 100"
	f.reloadErr = invalidFiles{refusal}
	if code, body, _ := call(t, srv, "POST", "/v1/reload", ""); code != http.StatusUnprocessableEntity || errorOf(t, body) != refusal {
		t.Errorf("refused files: %d %s, want 422 with the message", code, body)
	}
	f.reloadErr = errBroken
	if code, body, _ := call(t, srv, "POST", "/v1/reload", ""); code != http.StatusInternalServerError || strings.Contains(string(body), "disk on fire") {
		t.Errorf("a failed reload: %d %s", code, body)
	}
	if code, _, _ := call(t, srv, "GET", "/v1/reload", ""); code != http.StatusMethodNotAllowed {
		t.Errorf("GET /v1/reload: %d, want 405", code)
	}
	if f.reloads != 3 {
		t.Errorf("%d reloads, want 3", f.reloads)
	}
	plain := httptest.NewServer(NewHandler(struct{ Backend }{newFake()}, SingleToken(testToken), nil, nil))
	defer plain.Close()
	if code, _, _ := call(t, plain, "POST", "/v1/reload", ""); code != http.StatusNotFound {
		t.Errorf("a backend that cannot reload: status %d, want 404", code)
	}
}
