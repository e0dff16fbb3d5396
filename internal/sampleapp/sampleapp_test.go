package sampleapp

import (
	"context"
	"encoding/json"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pipit-dev/pipit/internal/testenv/fakeclock"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string // substring of the error; "" means valid
	}{
		{"defaults", Config{Version: "v1"}, ""},
		{"all faults", Config{Version: "v2", ErrorRate: 1, Latency: time.Second, LatencyJitter: time.Second}, ""},
		{"no version", Config{}, "version"},
		{"negative error rate", Config{Version: "v1", ErrorRate: -0.1}, "error rate"},
		{"error rate above one", Config{Version: "v1", ErrorRate: 1.5}, "error rate"},
		{"error rate NaN", Config{Version: "v1", ErrorRate: math.NaN()}, "error rate"},
		{"negative latency", Config{Version: "v1", Latency: -time.Millisecond}, "latency must"},
		{"negative jitter", Config{Version: "v1", LatencyJitter: -time.Millisecond}, "jitter"},
		{"conversion rate above one", Config{Version: "v1", ConversionRate: 1.2}, "conversion rate"},
		{"conversion rate NaN", Config{Version: "v1", ConversionRate: math.NaN()}, "conversion rate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate() = %v, want an error mentioning %q", err, tt.want)
			}
		})
	}
}

func TestHandlerPanicsOnInvalidConfig(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("Handler accepted an error rate of 2")
		}
	}()
	Handler(Config{Version: "v1", ErrorRate: 2})
}

func TestRootReportsVersionAndHostname(t *testing.T) {
	srv := httptest.NewServer(Handler(Config{Version: "v7"}))
	defer srv.Close()

	resp, err := http.Get(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status = %d, want 200", resp.StatusCode)
	}
	var got info
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	if got.Version != "v7" || got.Hostname == "" {
		t.Fatalf("body = %+v, want version v7 and a hostname", got)
	}
}

func TestVersionAndUnknownPath(t *testing.T) {
	srv := httptest.NewServer(Handler(Config{Version: "v3", ErrorRate: 1}))
	defer srv.Close()

	code, body := get(t, srv.URL+"/version")
	if code != http.StatusOK || body != "v3\n" {
		t.Fatalf("/version = %d %q, want 200 \"v3\\n\"", code, body)
	}
	if code, _ := get(t, srv.URL+"/nope"); code != http.StatusNotFound {
		t.Fatalf("/nope = %d, want 404", code)
	}
}

// The share of 500s over many requests should be close to ErrorRate. With
// 2000 requests at 0.25 the standard deviation is about 0.0097, so ±0.05 is
// five deviations: a correct handler essentially never fails this.
func TestErrorRateStatistics(t *testing.T) {
	const n, rate = 2000, 0.25
	h := Handler(Config{Version: "v2", ErrorRate: rate})

	var failed int
	for range n {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
		switch rec.Code {
		case http.StatusInternalServerError:
			failed++
		case http.StatusOK:
		default:
			t.Fatalf("unexpected status %d", rec.Code)
		}
	}
	if share := float64(failed) / n; math.Abs(share-rate) > 0.05 {
		t.Fatalf("error share = %.3f over %d requests, want %.2f ± 0.05", share, n, rate)
	}
}

// A quarter of the answers of / lead to the goal with a conversion rate
// of 0.25, none without one; the goal itself answers POST.
func TestConversionRateLeadsToTheGoal(t *testing.T) {
	const n, rate = 2000, 0.25
	for _, want := range []float64{rate, 0} {
		h := Handler(Config{Version: "v2", ConversionRate: want})
		led := 0
		for range n {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
			var body info
			if err := json.NewDecoder(rec.Body).Decode(&body); err != nil {
				t.Fatal(err)
			}
			switch body.Next {
			case GoalPath:
				led++
			case "":
			default:
				t.Fatalf("next = %q, want %s or nothing", body.Next, GoalPath)
			}
		}
		if share := float64(led) / n; math.Abs(share-want) > 0.05 {
			t.Errorf("led %.3f of %d visitors to the goal, want %.2f ± 0.05", share, n, want)
		}
	}
	rec := httptest.NewRecorder()
	Handler(Config{Version: "v2"}).ServeHTTP(rec, httptest.NewRequest(http.MethodPost, GoalPath, nil))
	if rec.Code != http.StatusOK || strings.TrimSpace(rec.Body.String()) != "v2" {
		t.Errorf("POST %s: %d %q, want 200 and the version", GoalPath, rec.Code, rec.Body.String())
	}
}

func TestErrorRateExtremes(t *testing.T) {
	for _, tt := range []struct {
		rate float64
		want int
	}{{0, http.StatusOK}, {1, http.StatusInternalServerError}} {
		h := Handler(Config{Version: "v1", ErrorRate: tt.rate})
		for range 200 {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
			if rec.Code != tt.want {
				t.Fatalf("error rate %v: status %d, want %d", tt.rate, rec.Code, tt.want)
			}
		}
	}
}

// Concurrent requests share the handler's random source; run under -race.
func TestLatencyAtLeastMinimum(t *testing.T) {
	const latency, jitter = 20 * time.Millisecond, 5 * time.Millisecond
	srv := httptest.NewServer(Handler(Config{Version: "v1", Latency: latency, LatencyJitter: jitter}))
	defer srv.Close()

	var wg sync.WaitGroup
	errs := make(chan string, 20)
	for range 20 {
		wg.Go(func() {
			start := time.Now()
			resp, err := http.Get(srv.URL + "/")
			if err != nil {
				errs <- err.Error()
				return
			}
			resp.Body.Close()
			if took := time.Since(start); took < latency-jitter {
				errs <- "answered after " + took.String()
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Errorf("with latency %v ± %v: %s", latency, jitter, e)
	}
}

func TestDrawStaysWithinJitterAndNeverNegative(t *testing.T) {
	f := newFaults(Config{Version: "v1", Latency: time.Millisecond, LatencyJitter: 3 * time.Millisecond})
	var sawZero, sawAboveMean bool
	for range 2000 {
		d, _, _ := f.draw()
		if d < 0 || d > 4*time.Millisecond {
			t.Fatalf("delay %v outside [0, 4ms]", d)
		}
		sawZero = sawZero || d == 0
		sawAboveMean = sawAboveMean || d > time.Millisecond
	}
	if !sawZero || !sawAboveMean {
		t.Fatalf("delays do not spread over the range: zero seen %v, above mean seen %v", sawZero, sawAboveMean)
	}
}

func TestHealthIgnoresFaults(t *testing.T) {
	h := Handler(Config{Version: "v1", ErrorRate: 1, Latency: time.Hour})
	for range 50 {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/health", nil))
		if rec.Code != http.StatusOK || rec.Body.String() != "ok\n" {
			t.Fatalf("/health = %d %q, want 200 \"ok\\n\"", rec.Code, rec.Body.String())
		}
	}
}

func TestServeOnFreePortAndStopGracefully(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// The request is held on a fake clock so that it is still in flight
	// when Serve is told to stop: a graceful stop lets it finish.
	const latency = 200 * time.Millisecond
	clock := fakeclock.New(time.Date(2026, 7, 1, 12, 0, 0, 0, time.UTC))
	cfg := Config{Version: "v9", Latency: latency, Clock: clock}
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, "127.0.0.1:0", cfg, func(addr string) { ready <- addr }) }()

	var addr string
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatalf("Serve returned before ready: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("Serve never became ready")
	}
	if strings.HasSuffix(addr, ":0") {
		t.Fatalf("ready reported %q, want the bound port", addr)
	}
	if code, body := get(t, "http://"+addr+"/version"); code != http.StatusOK || body != "v9\n" {
		t.Fatalf("/version = %d %q", code, body)
	}

	inFlight := make(chan int, 1)
	go func() {
		resp, err := http.Get("http://" + addr + "/")
		if err != nil {
			inFlight <- 0
			return
		}
		resp.Body.Close()
		inFlight <- resp.StatusCode
	}()
	// The handler waits on the clock: the server has read the request.
	if !clock.WaitForTimers(1, 5*time.Second) {
		t.Fatal("the request never reached the handler's delay")
	}
	cancel()
	// Once the listener is closed the stop has begun; only then may the
	// request finish.
	for deadline := time.Now().Add(5 * time.Second); ; {
		resp, err := http.Get("http://" + addr + "/health")
		if err != nil {
			break
		}
		resp.Body.Close()
		if time.Now().After(deadline) {
			t.Fatal("the listener still accepts after ctx was cancelled")
		}
		runtime.Gosched()
	}
	select {
	case code := <-inFlight:
		t.Fatalf("request meant to be in flight ended early with status %d", code)
	default:
	}
	clock.Advance(latency)

	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve() = %v, want nil after a graceful stop", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after ctx was cancelled")
	}
	if code := <-inFlight; code != http.StatusOK {
		t.Fatalf("request in flight during shutdown got %d, want 200", code)
	}
	if _, err := http.Get("http://" + addr + "/health"); err == nil {
		t.Fatal("server still answers after Serve returned")
	}
}

func TestServeRefusesBadConfigAndAddress(t *testing.T) {
	ctx := context.Background()
	if err := Serve(ctx, "127.0.0.1:0", Config{Version: "v1", ErrorRate: 3}, nil); err == nil || !strings.Contains(err.Error(), "error rate") {
		t.Fatalf("Serve with error rate 3 = %v, want a validation error", err)
	}
	if err := Serve(ctx, "127.0.0.1:notaport", Config{Version: "v1"}, nil); err == nil || !strings.Contains(err.Error(), "listen") {
		t.Fatalf("Serve on a bad address = %v, want a listen error", err)
	}
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}
