package proxy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/testenv/nettest"
)

// recordingUpstream answers its name and keeps what it received.
type recordingUpstream struct {
	*httptest.Server
	mu       sync.Mutex
	received []receivedRequest
	// gate, when set, holds every request until it is closed.
	gate chan struct{}
	// arrived counts requests that reached the handler.
	arrived atomic.Int64
}

type receivedRequest struct {
	method, uri string
	header      http.Header
	bodySum     [32]byte
	bodyLen     int
}

func newRecordingUpstream(t *testing.T, name string, gate chan struct{}) *recordingUpstream {
	t.Helper()
	u := &recordingUpstream{gate: gate}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.arrived.Add(1)
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return
		}
		if u.gate != nil {
			<-u.gate
		}
		u.mu.Lock()
		u.received = append(u.received, receivedRequest{r.Method, r.RequestURI, r.Header.Clone(), sha256.Sum256(body), len(body)})
		u.mu.Unlock()
		io.WriteString(w, name)
	}))
	t.Cleanup(u.Close)
	return u
}

func (u *recordingUpstream) requests() []receivedRequest {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]receivedRequest(nil), u.received...)
}

func mirrorSpec(pct float64) *v1alpha1.TrafficSpec {
	return &v1alpha1.TrafficSpec{Mirror: &v1alpha1.Mirror{Percent: v1alpha1.PercentOf(pct)}}
}

func mirrorProxy(t *testing.T, stable, canary *recordingUpstream, spec *v1alpha1.TrafficSpec) (*Proxy, string) {
	t.Helper()
	c := Upstream{Version: "v2", URL: nettest.MustURL(t, canary.URL)}
	p := newProxy(t, Config{Stable: Upstream{Version: "v1", URL: nettest.MustURL(t, stable.URL)}, Canary: &c, Name: "checkout", Traffic: spec})
	return p, front(t, p)
}

func post(t *testing.T, url string, body io.Reader) (status int, version string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := http.NewRequestWithContext(ctx, http.MethodPost, url, body)
	if err != nil {
		t.Fatal(err)
	}
	r.Header.Set("X-Trace", "abc")
	res, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.StatusCode, res.Header.Get(DefaultVersionHeader)
}

// TestMirrorCopies: at 100% every request to stable is copied to the
// canary with its method, URI, headers and body, marked as a copy; the
// copies are counted in MirrorStats, not in the canary's Stats.
func TestMirrorCopies(t *testing.T) {
	stable, canary := newRecordingUpstream(t, "v1", nil), newRecordingUpstream(t, "v2", nil)
	p, addr := mirrorProxy(t, stable, canary, mirrorSpec(100))
	body := strings.Repeat("x", 1000)
	for range 10 {
		if code, v := post(t, addr+"/orders?id=7", strings.NewReader(body)); code != 200 || v != "v1" {
			t.Fatalf("client got %d from %s", code, v)
		}
	}
	nettest.Eventually(t, "10 copies to be counted", func() bool { return p.MirrorStats().Canary.Requests == 10 })
	want := sha256.Sum256([]byte(body))
	for _, got := range canary.requests() {
		if got.method != http.MethodPost || got.uri != "/orders?id=7" || got.bodySum != want ||
			got.header.Get("X-Trace") != "abc" || got.header.Get(MirrorHeader) != "1" || got.header.Get("X-Forwarded-For") == "" {
			t.Fatalf("copy: %+v", got)
		}
	}
	for _, got := range stable.requests() {
		if got.bodySum != want || got.header.Get(MirrorHeader) != "" {
			t.Fatalf("stable got %+v", got)
		}
	}
	ms, s := p.MirrorStats(), settled(t, p, 10)
	if ms.Canary.Version != "v2" || ms.Canary.Errors5xx+ms.Canary.TransportErrors != 0 || ms.Dropped+ms.Skipped != 0 {
		t.Fatalf("mirror stats %+v", ms)
	}
	if s.Canary.Requests != 0 || s.Stable.Requests != 10 {
		t.Fatalf("copies leaked into the real stats: stable %d, canary %d", s.Stable.Requests, s.Canary.Requests)
	}
}

// TestMirrorSlowCanary: with the canary holding every copy, clients still
// get all their answers from stable; copies beyond the in-flight bound
// are dropped, and the held ones complete once the canary answers.
func TestMirrorSlowCanary(t *testing.T) {
	gate := make(chan struct{})
	stable, canary := newRecordingUpstream(t, "v1", nil), newRecordingUpstream(t, "v2", gate)
	released := false
	release := func() {
		if !released {
			released = true
			close(gate)
		}
	}
	t.Cleanup(release) // before the servers close, which waits for handlers
	p, addr := mirrorProxy(t, stable, canary, mirrorSpec(100))
	n := mirrorInFlight + 20
	for range n {
		if code, v := post(t, addr, strings.NewReader("payload")); code != 200 || v != "v1" {
			t.Fatalf("client got %d from %s", code, v)
		}
	}
	// Every answer above came back while no copy had been answered.
	if got := len(canary.requests()); got != 0 {
		t.Fatalf("the canary answered %d copies while held", got)
	}
	ms := p.MirrorStats()
	if ms.Dropped != uint64(n-mirrorInFlight) {
		t.Fatalf("dropped %d copies; want %d beyond the bound of %d", ms.Dropped, n-mirrorInFlight, mirrorInFlight)
	}
	nettest.Eventually(t, "the held copies to reach the canary", func() bool { return canary.arrived.Load() == mirrorInFlight })
	release()
	nettest.Eventually(t, "the held copies to complete", func() bool { return p.MirrorStats().Canary.Requests == mirrorInFlight })
	if got := len(stable.requests()); got != n {
		t.Fatalf("stable served %d of %d", got, n)
	}
}

// TestMirrorBodyBound: a body over the bound is not copied and reaches
// stable whole, with a known length or streamed; one within it is copied.
func TestMirrorBodyBound(t *testing.T) {
	stable, canary := newRecordingUpstream(t, "v1", nil), newRecordingUpstream(t, "v2", nil)
	spec := mirrorSpec(100)
	spec.Mirror.MaxBodyBytes = 1 << 10
	p, addr := mirrorProxy(t, stable, canary, spec)
	big := bytes.Repeat([]byte("0123456789abcdef"), 4096) // 64 KiB
	post(t, addr, bytes.NewReader(big))
	post(t, addr, io.MultiReader(bytes.NewReader(big))) // no length: chunked
	small := []byte(strings.Repeat("s", 1<<10))
	post(t, addr, io.MultiReader(bytes.NewReader(small)))
	nettest.Eventually(t, "the small copy", func() bool { return p.MirrorStats().Canary.Requests == 1 })
	got := stable.requests()
	if len(got) != 3 || got[0].bodySum != sha256.Sum256(big) || got[1].bodySum != sha256.Sum256(big) || got[2].bodySum != sha256.Sum256(small) {
		t.Fatalf("stable received %d requests, bodies intact: %v", len(got), len(got) == 3)
	}
	if c := canary.requests(); len(c) != 1 || c[0].bodySum != sha256.Sum256(small) {
		t.Fatalf("canary received %+v", c)
	}
	if ms := p.MirrorStats(); ms.Skipped != 2 {
		t.Fatalf("skipped %d copies; want 2", ms.Skipped)
	}
}

// TestMirrorClosedCanary: a closed canary gets no copies.
func TestMirrorClosedCanary(t *testing.T) {
	stable, canary := newRecordingUpstream(t, "v1", nil), newRecordingUpstream(t, "v2", nil)
	p, addr := mirrorProxy(t, stable, canary, mirrorSpec(100))
	p.SetCanaryAllowed(false)
	for range 5 {
		post(t, addr, nil)
	}
	if d := p.table.Load().Route(httptest.NewRequest(http.MethodGet, "/", nil)); d.Mirror {
		t.Fatal("a closed canary is mirrored to")
	}
	if got := canary.arrived.Load(); got != 0 {
		t.Fatalf("the closed canary got %d copies", got)
	}
}

// TestMirrorBuffered: the fast path's variant copies the body it is
// given, so the caller may reuse its buffer at once.
func TestMirrorBuffered(t *testing.T) {
	stable, canary := newRecordingUpstream(t, "v1", nil), newRecordingUpstream(t, "v2", nil)
	p, _ := mirrorProxy(t, stable, canary, mirrorSpec(100))
	tab := p.table.Load()
	buf := []byte("hello")
	r := httptest.NewRequest(http.MethodPut, "/k", nil)
	p.mirror.sendBuffered(r, buf, tab.canary)
	copy(buf, "XXXXX")
	nettest.Eventually(t, "the copy", func() bool { return p.MirrorStats().Canary.Requests == 1 })
	if c := canary.requests(); len(c) != 1 || c[0].bodySum != sha256.Sum256([]byte("hello")) || c[0].method != http.MethodPut {
		t.Fatalf("canary received %+v", c)
	}
	p.mirror.sendBuffered(r, bytes.Repeat([]byte("x"), DefaultMirrorMaxBody+1), tab.canary)
	if ms := p.MirrorStats(); ms.Skipped != 1 {
		t.Fatalf("skipped %d; want the body over the bound skipped", ms.Skipped)
	}
}

// TestMirrorMethods: with methods listed, only requests of those methods
// are copied; the others still reach stable, and nothing counts them as
// dropped or skipped.
func TestMirrorMethods(t *testing.T) {
	stable, canary := newRecordingUpstream(t, "v1", nil), newRecordingUpstream(t, "v2", nil)
	spec := mirrorSpec(100)
	spec.Mirror.Methods = []string{http.MethodGet, http.MethodHead}
	p, addr := mirrorProxy(t, stable, canary, spec)
	for range 3 {
		if code, v := post(t, addr+"/orders", strings.NewReader("order")); code != 200 || v != "v1" {
			t.Fatalf("client got %d from %s", code, v)
		}
	}
	if code, _, _ := get(t, http.DefaultClient, addr+"/catalog"); code != 200 {
		t.Fatalf("GET answered %d", code)
	}
	nettest.Eventually(t, "the GET to be copied", func() bool { return p.MirrorStats().Canary.Requests == 1 })
	settled(t, p, 4)
	for _, got := range canary.requests() {
		if got.method != http.MethodGet || got.uri != "/catalog" {
			t.Fatalf("copied %s %s; only GET and HEAD are listed", got.method, got.uri)
		}
	}
	if ms := p.MirrorStats(); ms.Canary.Requests != 1 || ms.Dropped+ms.Skipped != 0 {
		t.Fatalf("mirror stats %+v", ms)
	}
	if got := len(stable.requests()); got != 4 {
		t.Fatalf("stable served %d of 4", got)
	}
}
