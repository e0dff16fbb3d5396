package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/controlapi"
	"github.com/pipit-dev/pipit/internal/engine"
	"github.com/pipit-dev/pipit/internal/rollout"
)

const testToken = "client-test-token"

// fakeBackend keeps two rollouts in memory and applies commands with the
// engine's own rule.
type fakeBackend struct {
	mu        sync.Mutex
	views     map[string]controlapi.RolloutView
	submitted []rollout.Command
	rotations int
}

func newFake() *fakeBackend {
	return &fakeBackend{views: map[string]controlapi.RolloutView{
		"api": {Name: "api", Status: v1alpha1.RolloutStatus{Phase: v1alpha1.PhaseIdle, Stable: &v1alpha1.VersionRef{Version: "v1"}}},
		"web": {Name: "web", Steps: []string{"setWeight 5%"}, Status: v1alpha1.RolloutStatus{
			Phase: v1alpha1.PhaseProgressing, CanaryWeight: 5000,
			Stable: &v1alpha1.VersionRef{Version: "v1"}, Canary: &v1alpha1.VersionRef{Version: "v2"},
		}},
	}}
}

func (f *fakeBackend) Rollouts(context.Context) ([]controlapi.RolloutView, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return []controlapi.RolloutView{f.views["api"], f.views["web"]}, nil
}

func (f *fakeBackend) Rollout(_ context.Context, name string) (controlapi.RolloutView, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	v, ok := f.views[name]
	if !ok {
		return v, fmt.Errorf("rollout %q: %w", name, controlapi.ErrNotFound)
	}
	return v, nil
}

func (f *fakeBackend) Events(_ context.Context, name string, limit int) ([]v1alpha1.Event, error) {
	if _, err := f.Rollout(context.Background(), name); err != nil {
		return nil, err
	}
	var evs []v1alpha1.Event
	for i := range 5 {
		evs = append(evs, v1alpha1.Event{Reason: "E", Message: fmt.Sprint(i), Weight: v1alpha1.Percent(i * 1000)})
	}
	if limit > 0 {
		evs = evs[len(evs)-limit:]
	}
	return evs, nil
}

func (f *fakeBackend) Submit(_ context.Context, name string, cmd rollout.Command) (controlapi.RolloutView, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	v, ok := f.views[name]
	if !ok {
		return v, fmt.Errorf("rollout %q: %w", name, controlapi.ErrNotFound)
	}
	if err := engine.Allowed(v.Status, cmd); err != nil {
		return v, &controlapi.RefusedError{Reason: err.Error()}
	}
	f.submitted = append(f.submitted, cmd)
	v.Status.Phase = v1alpha1.PhaseProgressing
	v.Status.Canary = cmd.Canary
	f.views[name] = v
	return v, nil
}

func (f *fakeBackend) RotateCookieKeys(context.Context) (controlapi.KeyRotation, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rotations++
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	return controlapi.KeyRotation{RotatedAt: at, Rollouts: []controlapi.KeyGrace{{Name: "web", PreviousUntil: at.Add(time.Hour)}}}, nil
}

// Samples answers one sample that says what was asked: the metric as its
// name, since as its time.
func (f *fakeBackend) Samples(_ context.Context, name, metric string, since time.Time) ([]controlapi.Sample, error) {
	if _, err := f.Rollout(context.Background(), name); err != nil {
		return nil, err
	}
	return []controlapi.Sample{{At: since, MetricResult: v1alpha1.MetricResult{Name: metric, Verdict: v1alpha1.VerdictNoData}}}, nil
}

func startAPI(t *testing.T, b controlapi.Backend) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(controlapi.NewHandler(b, controlapi.SingleToken(testToken), nil, nil))
	t.Cleanup(srv.Close)
	return srv
}

func TestRoundTrip(t *testing.T) {
	f := newFake()
	c := NewHTTP(startAPI(t, f).URL+"/", testToken)
	ctx := context.Background()

	list, err := c.Rollouts(ctx)
	if err != nil || len(list) != 2 || list[1].Name != "web" || list[1].Status.CanaryWeight != 5000 {
		t.Fatalf("Rollouts = %+v, %v", list, err)
	}
	v, err := c.Rollout(ctx, "web")
	if err != nil || v.Status.Canary == nil || v.Status.Canary.Version != "v2" || v.Steps[0] != "setWeight 5%" {
		t.Fatalf("Rollout = %+v, %v", v, err)
	}
	evs, err := c.Events(ctx, "web", 2)
	if err != nil || len(evs) != 2 || evs[0].Message != "3" || evs[1].Weight != 4000 {
		t.Fatalf("Events(2) = %+v, %v", evs, err)
	}
	if evs, err := c.Events(ctx, "web", 0); err != nil || len(evs) != 5 {
		t.Fatalf("Events(0) = %d events, %v", len(evs), err)
	}

	// The time goes in UTC with its nanoseconds, the metric escaped.
	since := time.Date(2026, 7, 1, 14, 0, 0, 123456789, time.FixedZone("CEST", 2*3600))
	smp, err := c.Samples(ctx, "web", "p99 & more", since)
	if err != nil || len(smp) != 1 || smp[0].Name != "p99 & more" || !smp[0].At.Equal(since) {
		t.Fatalf("Samples = %+v, %v; want one of the metric asked for, at %s", smp, err, since)
	}
	if smp, err := c.Samples(ctx, "web", "", time.Time{}); err != nil || len(smp) != 1 || smp[0].Name != "" || !smp[0].At.IsZero() {
		t.Fatalf("Samples of every metric since ever = %+v, %v", smp, err)
	}
	if _, err := c.Samples(ctx, "nope", "", time.Time{}); !errors.Is(err, controlapi.ErrNotFound) {
		t.Fatalf("Samples of an unknown rollout: err = %v, want ErrNotFound", err)
	}

	canary := &v1alpha1.VersionRef{Version: "v2", URL: "http://127.0.0.1:9002"}
	v, err = c.Submit(ctx, "api", rollout.Command{Kind: rollout.CommandDeploy, Canary: canary, Actor: "ann", Reason: "ship it"})
	if err != nil || v.Status.Phase != v1alpha1.PhaseProgressing || !reflect.DeepEqual(*v.Status.Canary, *canary) {
		t.Fatalf("Submit = %+v, %v", v, err)
	}
	got := f.submitted[0]
	if got.Kind != rollout.CommandDeploy || !reflect.DeepEqual(*got.Canary, *canary) || got.Actor != controlapi.AdminName || got.Reason != "ship it" {
		t.Fatalf("backend got %+v", got)
	}
}

func TestNamesAreEscaped(t *testing.T) {
	c := NewHTTP(startAPI(t, newFake()).URL, testToken)
	_, err := c.Rollout(context.Background(), "web/../api")
	if !errors.Is(err, controlapi.ErrNotFound) {
		t.Fatalf("err = %v, want not found (the name must not become a path)", err)
	}
}

func TestErrorMapping(t *testing.T) {
	srv := startAPI(t, newFake())
	ctx := context.Background()
	c := NewHTTP(srv.URL, testToken)

	_, err := c.Rollout(ctx, "nope")
	if !errors.Is(err, controlapi.ErrNotFound) || !strings.Contains(err.Error(), `"nope"`) {
		t.Fatalf("missing rollout: %v", err)
	}
	_, err = c.Events(ctx, "nope", 0)
	if !errors.Is(err, controlapi.ErrNotFound) {
		t.Fatalf("events of a missing rollout: %v", err)
	}
	_, err = c.Submit(ctx, "api", rollout.Command{Kind: rollout.CommandPause})
	var refused *controlapi.RefusedError
	if !errors.As(err, &refused) || refused.Reason != "cannot pause a rollout that is Idle" {
		t.Fatalf("refused command: %v", err)
	}
	_, err = c.Submit(ctx, "api", rollout.Command{Kind: "explode"})
	if !errors.Is(err, ErrBadRequest) || !strings.Contains(err.Error(), "unknown command kind") {
		t.Fatalf("bad command: %v", err)
	}

	_, err = NewHTTP(srv.URL, "wrong").Rollouts(ctx)
	if !errors.Is(err, ErrTokenRejected) || !strings.Contains(err.Error(), "rejected the token") {
		t.Fatalf("wrong token: %v", err)
	}
	if strings.Contains(err.Error(), "wrong") {
		t.Fatalf("error %q shows the token", err)
	}
}

// TestRotateCookieKeys: the rotation reaches the daemon with the token and
// its answer comes back; it is never sent twice, even when the connection
// dropped; a wrong token and a daemon without the route are told apart.
func TestRotateCookieKeys(t *testing.T) {
	f := newFake()
	srv := startAPI(t, f)
	ctx := context.Background()
	rot, err := NewHTTP(srv.URL, testToken).RotateCookieKeys(ctx)
	if err != nil || rot.RotatedAt.IsZero() || len(rot.Rollouts) != 1 || rot.Rollouts[0].Name != "web" ||
		rot.Rollouts[0].PreviousUntil.Sub(rot.RotatedAt) != time.Hour || f.rotations != 1 {
		t.Fatalf("RotateCookieKeys = %+v, %v; %d rotations", rot, err, f.rotations)
	}
	if _, err := NewHTTP(srv.URL, "wrong").RotateCookieKeys(ctx); !errors.Is(err, ErrTokenRejected) || f.rotations != 1 {
		t.Fatalf("wrong token: %v, %d rotations", err, f.rotations)
	}

	flaky, l := startFlaky(t, f, 1)
	if _, err := NewHTTP(flaky.URL, testToken).RotateCookieKeys(ctx); err == nil {
		t.Fatal("a rotation over a dropped connection succeeded")
	}
	if n := l.accepted.Load(); n != 1 || f.rotations != 1 {
		t.Fatalf("%d connections, %d rotations; want 1 and 1 (not retried)", n, f.rotations)
	}

	old := startAPI(t, struct{ controlapi.Backend }{f})
	if _, err := NewHTTP(old.URL, testToken).RotateCookieKeys(ctx); err == nil || !strings.Contains(err.Error(), "has no key rotation") {
		t.Fatalf("a daemon without the route: %v", err)
	}
}

// dropFirst is a listener that closes its first connections at once,
// like a daemon that is not ready yet.
type dropFirst struct {
	net.Listener
	drop     atomic.Int32
	accepted atomic.Int32
}

func (l *dropFirst) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		l.accepted.Add(1)
		if l.drop.Add(-1) >= 0 {
			c.Close()
			continue
		}
		return c, nil
	}
}

func startFlaky(t *testing.T, f *fakeBackend, drops int32) (*httptest.Server, *dropFirst) {
	t.Helper()
	srv := httptest.NewUnstartedServer(controlapi.NewHandler(f, controlapi.SingleToken(testToken), nil, nil))
	l := &dropFirst{Listener: srv.Listener}
	l.drop.Store(drops)
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, l
}

func TestGetRetriesDroppedConnections(t *testing.T) {
	srv, l := startFlaky(t, newFake(), 2)
	v, err := NewHTTP(srv.URL, testToken).Rollout(context.Background(), "web")
	if err != nil || v.Name != "web" {
		t.Fatalf("Rollout = %+v, %v", v, err)
	}
	if n := l.accepted.Load(); n != 3 {
		t.Fatalf("%d connections, want 3 (two dropped, one served)", n)
	}
}

func TestGetGivesUpAfterThreeTries(t *testing.T) {
	srv, l := startFlaky(t, newFake(), 100)
	_, err := NewHTTP(srv.URL, testToken).Rollouts(context.Background())
	if err == nil || !strings.Contains(err.Error(), "cannot reach the pipit daemon") {
		t.Fatalf("err = %v", err)
	}
	if n := l.accepted.Load(); n != getAttempts {
		t.Fatalf("%d connections, want %d", n, getAttempts)
	}
}

func TestCommandsAreNotRetried(t *testing.T) {
	f := newFake()
	srv, l := startFlaky(t, f, 1)
	_, err := NewHTTP(srv.URL, testToken).Submit(context.Background(), "web", rollout.Command{Kind: rollout.CommandPause})
	if err == nil {
		t.Fatal("command over a dropped connection succeeded")
	}
	if n := l.accepted.Load(); n != 1 || len(f.submitted) != 0 {
		t.Fatalf("%d connections, %d commands applied; want 1 and 0", n, len(f.submitted))
	}
}

// TestCommandOverAClosedKeptAliveConnectionIsSentAgain: a daemon that
// hands over closes its kept-alive connections, and a command written to
// one just then gets no answer; the client sends it again on a new
// connection, where it is applied once.
func TestCommandOverAClosedKeptAliveConnectionIsSentAgain(t *testing.T) {
	f := newFake()
	api := controlapi.NewHandler(f, controlapi.SingleToken(testToken), nil, nil)
	type connKey struct{}
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Context().Value(connKey{}).(int32) == 1 && r.Method == http.MethodPost {
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				conn.Close() // read, and gone with no answer, as a daemon handing over
			}
			return
		}
		api.ServeHTTP(w, r)
	}))
	srv.Config.ConnContext = func(ctx context.Context, _ net.Conn) context.Context {
		return context.WithValue(ctx, connKey{}, conns.Add(1))
	}
	srv.Start()
	t.Cleanup(srv.Close)
	c := NewHTTP(srv.URL, testToken)
	if _, err := c.Rollout(context.Background(), "web"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Submit(context.Background(), "web", rollout.Command{Kind: rollout.CommandPause}); err != nil {
		t.Fatalf("a command over the kept-alive connection closed under it: %v", err)
	}
	if n := conns.Load(); n != 2 || len(f.submitted) != 1 {
		t.Fatalf("%d connections, %d commands applied; want 2 and 1", n, len(f.submitted))
	}
}

func TestRefusedConnectionIsReported(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	_, err = NewHTTP("http://"+addr, testToken).Rollouts(context.Background())
	if err == nil || !strings.Contains(err.Error(), "cannot reach the pipit daemon at http://"+addr) {
		t.Fatalf("err = %v", err)
	}
}

func TestContextCancelStopsRetries(t *testing.T) {
	srv, _ := startFlaky(t, newFake(), 100)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := NewHTTP(srv.URL, testToken).Rollouts(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

func writeStateDir(t *testing.T, addr string, tokenMode os.FileMode) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, controlapi.AddressFile), []byte(addr+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, controlapi.TokenFile)
	if err := os.WriteFile(p, []byte(testToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, tokenMode); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestFromStateDir(t *testing.T) {
	srv := startAPI(t, newFake())
	addr := strings.TrimPrefix(srv.URL, "http://")
	c, err := FromStateDir(writeStateDir(t, addr, 0o600))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Rollout(context.Background(), "web"); err != nil {
		t.Fatalf("client from the state directory: %v", err)
	}
	if _, err := FromStateDir(writeStateDir(t, addr, 0o400)); err != nil {
		t.Fatalf("read-only token file refused: %v", err)
	}
}

func TestFromStateDirRefuses(t *testing.T) {
	empty := t.TempDir()
	if _, err := FromStateDir(empty); err == nil || err.Error() != "no pipit daemon found in "+empty+" (start one with `pipit up`)" {
		t.Fatalf("empty dir: %v", err)
	}
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o700, 0o660} {
		dir := writeStateDir(t, "127.0.0.1:1", mode)
		_, err := FromStateDir(dir)
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("mode %04o", mode)) || !strings.Contains(err.Error(), "chmod 600") {
			t.Fatalf("mode %04o: err = %v", mode, err)
		}
	}
	noToken := writeStateDir(t, "127.0.0.1:1", 0o600)
	os.Remove(filepath.Join(noToken, controlapi.TokenFile))
	if _, err := FromStateDir(noToken); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("missing token: %v", err)
	}
	if _, err := FromStateDir(writeStateDir(t, "not an address", 0o600)); err == nil || !strings.Contains(err.Error(), "HOST:PORT") {
		t.Fatalf("bad address: %v", err)
	}
}

func TestBaseURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"127.0.0.1:7070", "http://127.0.0.1:7070"},
		{"[::1]:7070", "http://[::1]:7070"},
		{"http://127.0.0.1:7070/", "http://127.0.0.1:7070"},
		{"https://pipit.example:443", "https://pipit.example:443"},
		{"127.0.0.1", ""},
		{"ftp://127.0.0.1:21", ""},
		{"http://", ""},
		{"", ""},
	}
	for _, tt := range tests {
		got, err := BaseURL(tt.in)
		if (err != nil) != (tt.want == "") || got != tt.want {
			t.Errorf("BaseURL(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}
