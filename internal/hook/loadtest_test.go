package hook

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pipit-dev/pipit/api/v1alpha1"
)

func TestLoadTestHookSendsTraffic(t *testing.T) {
	var hits atomic.Int32
	var wrongHeader atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if r.Method != http.MethodHead || r.Header.Get("X-Canary") != "1" {
			wrongHeader.Store(true)
		}
		if hits.Load()%2 == 0 {
			w.WriteHeader(http.StatusInternalServerError) // failures are the analysis' business
		}
	}))
	defer srv.Close()
	spec := v1alpha1.WebhookSpec{Name: "load", Type: v1alpha1.HookRollout, LoadTest: &v1alpha1.LoadTestHook{
		URL: srv.URL, Method: http.MethodHead, Rate: 10, Duration: dur(time.Second),
		Headers: map[string]string{"X-Canary": "1"},
	}}
	res := Runner{}.Run(context.Background(), spec, samplePayload())
	if !res.OK || res.Err != nil || res.Attempts != 1 {
		t.Fatalf("Run = %+v, want OK", res)
	}
	if n := hits.Load(); n < 5 || n > 15 {
		t.Errorf("server got %d requests, want about 10", n)
	}
	if wrongHeader.Load() {
		t.Error("requests did not carry the configured method and headers")
	}
	if !strings.Contains(res.Message, "requests") || !strings.Contains(res.Message, "% success") || !strings.Contains(res.Message, "p99") {
		t.Errorf("message %q is not a summary", res.Message)
	}
}

func TestLoadTestHookWithoutAnswers(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	spec := v1alpha1.WebhookSpec{Name: "load", Type: v1alpha1.HookRollout, LoadTest: &v1alpha1.LoadTestHook{
		URL: "http://" + addr + "/", Rate: 5, Duration: dur(400 * time.Millisecond),
	}}
	res := Runner{}.Run(context.Background(), spec, samplePayload())
	if res.OK || res.Err == nil {
		t.Fatalf("Run = %+v, want a failure", res)
	}
	if !strings.Contains(res.Err.Error(), "no request got an answer") {
		t.Errorf("error %q does not say why", res.Err)
	}
}
