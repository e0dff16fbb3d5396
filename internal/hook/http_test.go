package hook

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/testenv/fakeclock"
)

func ptr[T any](v T) *T { return &v }

func dur(d time.Duration) *metav1.Duration { return &metav1.Duration{Duration: d} }

func samplePayload() Payload {
	return Payload{
		Name:          "web",
		Namespace:     "shop",
		Phase:         string(v1alpha1.PhaseProgressing),
		Version:       "v2",
		StableVersion: "v1",
		Step:          3,
		Weight:        2.5,
		Metadata:      map[string]string{"ticket": "OPS-7"},
	}
}

// received is one request as a test receiver saw it.
type received struct {
	body      []byte
	timestamp string
	signature string
	ctype     string
}

// receiver answers with the statuses given, one per request, repeating the
// last, and records what it got.
func receiver(t *testing.T, statuses ...int) (*httptest.Server, func() []received) {
	t.Helper()
	var mu sync.Mutex
	var got []received
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			t.Errorf("method %s, want POST", r.Method)
		}
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, received{body, r.Header.Get(TimestampHeader), r.Header.Get(SignatureHeader), r.Header.Get("Content-Type")})
		status := statuses[min(len(got), len(statuses))-1]
		mu.Unlock()
		w.WriteHeader(status)
		io.WriteString(w, http.StatusText(status)+" from receiver")
	}))
	t.Cleanup(srv.Close)
	return srv, func() []received {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(got)
	}
}

func TestHTTPHookSendsSignedPayload(t *testing.T) {
	srv, got := receiver(t, http.StatusOK)
	t.Setenv("HOOK_SECRET", "s3cret\n")
	spec := v1alpha1.WebhookSpec{
		Name: "gate", Type: v1alpha1.HookConfirmPromotion, URL: srv.URL + "/gate",
		SecretEnv: "HOOK_SECRET", Metadata: map[string]string{"team": "payments", "ticket": "spec"},
	}
	clock := fakeclock.New(time.Date(2026, 7, 1, 12, 0, 0, 0, time.UTC))
	res := Runner{Clock: clock}.Run(context.Background(), spec, samplePayload())
	if !res.OK || res.Err != nil || res.Attempts != 1 {
		t.Fatalf("Run = %+v, want OK after one attempt", res)
	}
	if res.Message != "OK from receiver" {
		t.Errorf("message %q, want the response body", res.Message)
	}
	if len(got()) != 1 {
		t.Fatalf("receiver got %d requests, want 1", len(got()))
	}
	r := got()[0]
	if r.ctype != "application/json" {
		t.Errorf("content type %q", r.ctype)
	}
	var fields map[string]any
	if err := json.Unmarshal(r.body, &fields); err != nil {
		t.Fatalf("body is not JSON: %v\n%s", err, r.body)
	}
	want := map[string]any{
		"name": "web", "namespace": "shop", "phase": "Progressing", "type": "confirm-promotion",
		"version": "v2", "stableVersion": "v1", "step": 3.0, "weight": 2.5,
		// the caller's ticket wins over the spec's
		"metadata": map[string]any{"team": "payments", "ticket": "OPS-7"},
	}
	if len(fields) != len(want) {
		t.Errorf("payload fields %v, want %v", fields, want)
	}
	for k, v := range want {
		if g, _ := json.Marshal(fields[k]); string(g) != string(must(json.Marshal(v))) {
			t.Errorf("payload %s = %s, want %v", k, g, v)
		}
	}

	if want := strconv.FormatInt(clock.Now().Unix(), 10); r.timestamp != want {
		t.Errorf("timestamp header %q, want the clock's Unix time %s", r.timestamp, want)
	}
	secret := []byte("s3cret") // surrounding white space is not part of it
	if !Verify(secret, r.timestamp, r.body, r.signature) {
		t.Errorf("signature %q does not verify", r.signature)
	}
	tampered := []byte(strings.Replace(string(r.body), `"weight":2.5`, `"weight":100`, 1))
	if string(tampered) == string(r.body) {
		t.Fatal("test did not tamper with the body")
	}
	if Verify(secret, r.timestamp, tampered, r.signature) {
		t.Error("signature verifies a tampered body")
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestHTTPHookWithoutSecretIsUnsigned(t *testing.T) {
	srv, got := receiver(t, http.StatusNoContent)
	res := Runner{}.Run(context.Background(), v1alpha1.WebhookSpec{Name: "e", Type: v1alpha1.HookEvent, URL: srv.URL}, samplePayload())
	if !res.OK {
		t.Fatalf("Run = %+v, want OK", res)
	}
	if res.Message != "204 No Content" {
		t.Errorf("message %q, want the status when the body is empty", res.Message)
	}
	if r := got()[0]; r.signature != "" || r.timestamp != "" {
		t.Errorf("unsigned hook sent signature %q, timestamp %q", r.signature, r.timestamp)
	}
}

// TestHTTPHookRetriesServerErrors: each retry waits its backoff on the
// clock, drawn from the upper half of base·2ⁿ⁻¹: no retry before the
// half, the retry before the whole. Each attempt is signed afresh.
func TestHTTPHookRetriesServerErrors(t *testing.T) {
	srv, got := receiver(t, http.StatusServiceUnavailable, http.StatusServiceUnavailable, http.StatusOK)
	t.Setenv("HOOK_SECRET", "k")
	clock := fakeclock.New(time.Date(2026, 7, 1, 12, 0, 0, 0, time.UTC))
	done := make(chan Result, 1)
	go func() {
		done <- Runner{Clock: clock}.Run(context.Background(), v1alpha1.WebhookSpec{
			Name: "r", Type: v1alpha1.HookRollout, URL: srv.URL, SecretEnv: "HOOK_SECRET",
		}, samplePayload())
	}()
	for retry, ceiling := range []time.Duration{baseBackoff, 2 * baseBackoff} {
		if !clock.WaitForTimers(1, 10*time.Second) {
			t.Fatalf("no backoff after attempt %d", retry+1)
		}
		clock.Advance(ceiling/2 - time.Nanosecond)
		if n := len(got()); n != retry+1 {
			t.Fatalf("%d requests a nanosecond before the shortest backoff of retry %d ended, want %d", n, retry+1, retry+1)
		}
		clock.Advance(ceiling / 2)
	}
	var res Result
	select {
	case res = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the hook did not answer after the longest backoffs")
	}
	if !res.OK || res.Err != nil || res.Attempts != 3 {
		t.Fatalf("Run = %+v, want OK at the third attempt", res)
	}
	for i, r := range got() {
		if !Verify([]byte("k"), r.timestamp, r.body, r.signature) {
			t.Errorf("attempt %d is not signed", i+1)
		}
	}
}

func TestHTTPHookGivesUpAfterRetries(t *testing.T) {
	srv, got := receiver(t, http.StatusBadGateway)
	res := Runner{}.Run(context.Background(), v1alpha1.WebhookSpec{
		Name: "r", Type: v1alpha1.HookRollout, URL: srv.URL, Retries: ptr[int32](1),
	}, samplePayload())
	if res.OK || res.Err == nil || res.Attempts != 2 || len(got()) != 2 {
		t.Fatalf("Run = %+v after %d requests, want a failure after 2 attempts", res, len(got()))
	}
	if !strings.Contains(res.Err.Error(), "502") || res.Message != "Bad Gateway from receiver" {
		t.Errorf("Run = %+v, want the status in the error and the body as message", res)
	}
}

func TestHTTPHookDoesNotRetryClientErrors(t *testing.T) {
	srv, got := receiver(t, http.StatusBadRequest, http.StatusOK)
	res := Runner{}.Run(context.Background(), v1alpha1.WebhookSpec{Name: "c", Type: v1alpha1.HookConfirmRollout, URL: srv.URL}, samplePayload())
	if res.OK || res.Err != nil || res.Attempts != 1 || len(got()) != 1 {
		t.Fatalf("Run = %+v after %d requests, want a definitive no after one attempt", res, len(got()))
	}
	if res.Message != "Bad Request from receiver" {
		t.Errorf("message %q, want the response body", res.Message)
	}
}

func TestHTTPHookDoesNotFollowRedirects(t *testing.T) {
	target, got := receiver(t, http.StatusOK)
	redirect := httptest.NewServer(http.RedirectHandler(target.URL, http.StatusTemporaryRedirect))
	defer redirect.Close()
	res := Runner{}.Run(context.Background(), v1alpha1.WebhookSpec{Name: "c", Type: v1alpha1.HookConfirmRollout, URL: redirect.URL}, samplePayload())
	if res.OK || res.Attempts != 1 || len(got()) != 0 {
		t.Fatalf("Run = %+v, target got %d requests; want a no without following", res, len(got()))
	}
}

// hanging answers nothing until the client gives up or the test ends.
func hanging(t *testing.T) (*httptest.Server, *atomic.Int32) {
	var hits atomic.Int32
	done := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		select {
		case <-r.Context().Done():
		case <-done:
		}
	}))
	t.Cleanup(func() { close(done); srv.Close() })
	return srv, &hits
}

func TestHTTPHookTimeoutPerAttempt(t *testing.T) {
	srv, hits := hanging(t)
	res := Runner{}.Run(context.Background(), v1alpha1.WebhookSpec{
		Name: "slow", Type: v1alpha1.HookPreRollout, URL: srv.URL + "/hook?token=abc123",
		Timeout: dur(100 * time.Millisecond), Retries: ptr[int32](1),
	}, samplePayload())
	// A loaded machine may give up on an attempt before the server sees it.
	if res.OK || res.Err == nil || res.Attempts != 2 || hits.Load() > 2 {
		t.Fatalf("Run = %+v after %d requests, want two timed out attempts", res, hits.Load())
	}
	if !strings.Contains(res.Err.Error(), "no answer within 100ms") {
		t.Errorf("error %q does not say the attempt timed out", res.Err)
	}
	if strings.Contains(res.Err.Error(), "abc123") {
		t.Errorf("error %q leaks the URL's token", res.Err)
	}
}

func TestHTTPHookStopsWithContext(t *testing.T) {
	srv, _ := hanging(t)
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	res := Runner{}.Run(ctx, v1alpha1.WebhookSpec{
		Name: "slow", Type: v1alpha1.HookPreRollout, URL: srv.URL,
		Timeout: dur(time.Hour), Retries: ptr[int32](10),
	}, samplePayload())
	if res.OK || !errors.Is(res.Err, context.DeadlineExceeded) || res.Attempts != 1 {
		t.Fatalf("Run = %+v, want one attempt cut short by the context", res)
	}
}

func TestHTTPHookRefusesToSendUnsigned(t *testing.T) {
	srv, got := receiver(t, http.StatusOK)
	for name, spec := range map[string]v1alpha1.WebhookSpec{
		"unset env":    {SecretEnv: "PIPIT_TEST_UNSET_SECRET"},
		"missing file": {SecretFile: filepath.Join(t.TempDir(), "nope")},
		"empty file":   {SecretFile: writeFile(t, "empty", " \n")},
	} {
		spec.Name, spec.Type, spec.URL = "s", v1alpha1.HookPreRollout, srv.URL
		res := Runner{}.Run(context.Background(), spec, samplePayload())
		if res.OK || res.Err == nil || res.Attempts != 0 {
			t.Errorf("%s: Run = %+v, want an error before any attempt", name, res)
		}
	}
	if len(got()) != 0 {
		t.Errorf("receiver got %d unsigned requests", len(got()))
	}
}

func TestHTTPHookSecretFromFile(t *testing.T) {
	srv, got := receiver(t, http.StatusOK)
	spec := v1alpha1.WebhookSpec{Name: "f", Type: v1alpha1.HookPostRollout, URL: srv.URL, SecretFile: writeFile(t, "secret", "from-file\n")}
	if res := (Runner{}).Run(context.Background(), spec, samplePayload()); !res.OK {
		t.Fatalf("Run = %+v, want OK", res)
	}
	r := got()[0]
	if !Verify([]byte("from-file"), r.timestamp, r.body, r.signature) {
		t.Error("request is not signed with the file's secret")
	}
}

func TestHTTPHookBoundsMessage(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusForbidden)
		io.WriteString(w, strings.Repeat("é", 5000))
	}))
	defer srv.Close()
	res := Runner{}.Run(context.Background(), v1alpha1.WebhookSpec{Name: "b", Type: v1alpha1.HookConfirmRollout, URL: srv.URL}, samplePayload())
	if res.OK || len(res.Message) > MaxMessage || !strings.HasSuffix(res.Message, "é…") {
		t.Fatalf("message of %d bytes ending %q, want at most %d ending in an ellipsis",
			len(res.Message), res.Message[max(0, len(res.Message)-8):], MaxMessage)
	}
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
