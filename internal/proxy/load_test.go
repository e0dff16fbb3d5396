package proxy

import (
	"context"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/proxy/health"
)

// seqHeader carries a request number taken just before the request is
// sent. A number taken after SetWeight returned belongs to a request
// routed with the new weight, which lets the tests below tell "routed
// before the change" from "after" without timing guesses.
const seqHeader = "X-Test-Seq"

// seqUpstream is a backend that remembers the highest request number it
// served.
type seqUpstream struct {
	*httptest.Server
	hits   atomic.Int64
	maxSeq atomic.Uint64
}

func newSeqUpstream(t *testing.T) *seqUpstream {
	u := &seqUpstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			return
		}
		u.hits.Add(1)
		seq, _ := strconv.ParseUint(r.Header.Get(seqHeader), 10, 64)
		for cur := u.maxSeq.Load(); seq > cur && !u.maxSeq.CompareAndSwap(cur, seq); cur = u.maxSeq.Load() {
		}
	}))
	t.Cleanup(u.Close)
	return u
}

// TestLoadWeightChangesLoseNoRequests sends a steady 400 req/s, on each
// request path, while the weight changes 200 times and then the canary is
// rolled back (weight 0, canary shut off), and 300 requests more: no
// request may fail, and none routed after the rollback may reach the
// canary.
func TestLoadWeightChangesLoseNoRequests(t *testing.T) {
	for _, fe := range frontends {
		t.Run(fe.name, func(t *testing.T) { testLoadWeightChanges(t, fe) })
	}
}

func testLoadWeightChanges(t *testing.T, fe frontend) {
	st, ca := newSeqUpstream(t), newSeqUpstream(t)
	p := newProxy(t, Config{
		Stable: Upstream{Version: "v1", URL: mustURL(t, st.URL)},
		Canary: &Upstream{Version: "v2", URL: mustURL(t, ca.URL)},
		Weight: 50_000,
	})
	url := fe.serve(t, p)

	var seq, finalSeq atomic.Uint64
	targeter := func(tgt *vegeta.Target) error {
		tgt.Method, tgt.URL = http.MethodGet, url
		tgt.Header = http.Header{seqHeader: {strconv.FormatUint(seq.Add(1), 10)}}
		return nil
	}

	changed, attackDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(changed)
		// Paced by the traffic rather than the clock, so a busy machine
		// still sees every change under load: one change every 3 requests,
		// the last at about request 600.
		rng := rand.New(rand.NewPCG(7, 11))
		for i := range uint64(200) {
			for seq.Load() < 3*(i+1) {
				select {
				case <-attackDone:
					return
				case <-time.After(time.Millisecond):
				}
			}
			if err := p.SetWeight(v1alpha1.Percent(rng.Int32N(int32(v1alpha1.FullWeight) + 1))); err != nil {
				t.Error(err)
			}
		}
		if err := p.SetWeight(0); err != nil {
			t.Error(err)
		}
		p.SetCanaryAllowed(false)
		finalSeq.Store(seq.Load())
	}()

	attacker := vegeta.NewAttacker(vegeta.Timeout(10*time.Second), vegeta.Workers(8), vegeta.MaxWorkers(64))
	// The attack lasts until 300 requests after the final weight change
	// rather than for a fixed time, so that a busy machine, which sends
	// fewer requests a second, still sees every change under load.
	go func() {
		defer attacker.Stop()
		limit := time.After(2 * time.Minute)
		select {
		case <-changed:
		case <-limit:
			return
		}
		for final := finalSeq.Load(); final != 0 && seq.Load() < final+300; {
			select {
			case <-limit:
				return
			case <-time.After(time.Millisecond):
			}
		}
	}()
	var m vegeta.Metrics
	for res := range attacker.Attack(targeter, vegeta.Rate{Freq: 400, Per: time.Second}, 0, "weights") {
		m.Add(res)
	}
	m.Close()
	close(attackDone)
	<-changed
	if finalSeq.Load() == 0 {
		t.Fatalf("the attack ended after %d requests, before the 200 weight changes", m.Requests)
	}

	if m.Requests < 600 {
		t.Fatalf("only %d requests were sent", m.Requests)
	}
	if m.Success != 1 || len(m.Errors) > 0 {
		t.Errorf("%d requests: success ratio %v, status codes %v, errors %v", m.Requests, m.Success, m.StatusCodes, m.Errors)
	}
	if ca.hits.Load() == 0 || st.hits.Load() == 0 {
		t.Errorf("stable served %d, canary %d: the split never happened", st.hits.Load(), ca.hits.Load())
	}
	if after := seq.Load() - finalSeq.Load(); after < 100 {
		t.Errorf("only %d requests after the final weight 0; the test proves little", after)
	}
	if got, final := ca.maxSeq.Load(), finalSeq.Load(); got > final {
		t.Errorf("canary served request #%d, sent after weight 0 took effect at #%d", got, final)
	}
	s := settled(t, p, m.Requests)
	if s.Stable.Requests+s.Canary.Requests != m.Requests || s.Canary.Requests != uint64(ca.hits.Load()) {
		t.Errorf("stats count %d + %d requests, vegeta sent %d, canary served %d",
			s.Stable.Requests, s.Canary.Requests, m.Requests, ca.hits.Load())
	}
}

// TestCanaryDiesMidRun closes the canary under traffic, on each request
// path. The test plays the daemon: on the checker's "canary down" it sets
// the weight to 0. Only requests sent before that may fail, and every
// later one must be served by stable. Outlier detection is off, so that
// the health checker alone is tested here (see TestCanaryDiesMidRunEjected).
func TestCanaryDiesMidRun(t *testing.T) {
	for _, fe := range frontends {
		t.Run(fe.name, func(t *testing.T) { testCanaryDies(t, fe, false) })
	}
}

// TestCanaryDiesMidRunEjected is TestCanaryDiesMidRun with no daemon and
// no health checker: the proxy's own outlier detection takes the canary
// out of the traffic after a few failures.
func TestCanaryDiesMidRunEjected(t *testing.T) {
	for _, fe := range frontends {
		t.Run(fe.name, func(t *testing.T) { testCanaryDies(t, fe, true) })
	}
}

func testCanaryDies(t *testing.T, fe frontend, eject bool) {
	st, ca := newSeqUpstream(t), newSeqUpstream(t)
	var seq, downSeq atomic.Uint64
	down := make(chan struct{})
	markDown := func() {
		downSeq.Store(seq.Load())
		close(down)
	}
	cfg := Config{
		Stable:          Upstream{Version: "v1", URL: mustURL(t, st.URL)},
		Canary:          &Upstream{Version: "v2", URL: mustURL(t, ca.URL)},
		Weight:          50_000,
		OutlierFailures: -1,
	}
	if eject {
		cfg.OutlierFailures = 3
		cfg.OnEject = func(string, string) { markDown() }
	}
	p := newProxy(t, cfg)
	url := fe.serve(t, p)

	if !eject {
		_, changes := runChecker(t, p, health.Config{Interval: 50 * time.Millisecond, FailureThreshold: 2, PassiveFailures: 5},
			func(c change) {
				if c.role == RoleCanary && !c.healthy && downSeq.Load() == 0 {
					if err := p.SetWeight(0); err != nil {
						t.Error(err)
					}
					markDown()
				}
			})
		for range 2 {
			if c := nextChange(t, changes); !c.healthy {
				t.Fatalf("change %+v before the canary was closed", c)
			}
		}
	}

	type failure struct {
		seq  uint64
		code int
	}
	var (
		mu        sync.Mutex
		failures  []failure
		lateOK    int
		lateWrong []string
	)
	ctx, stop := context.WithTimeout(context.Background(), 10*time.Second)
	defer stop()
	client := &http.Client{Timeout: 5 * time.Second}
	var workers sync.WaitGroup
	for range 4 {
		workers.Go(func() {
			for ctx.Err() == nil {
				n := seq.Add(1)
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
				req.Header.Set(seqHeader, strconv.FormatUint(n, 10))
				resp, err := client.Do(req)
				if err != nil {
					if ctx.Err() == nil {
						t.Errorf("request #%d: %v", n, err)
					}
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				mu.Lock()
				if resp.StatusCode != http.StatusOK {
					failures = append(failures, failure{n, resp.StatusCode})
				}
				if d := downSeq.Load(); d != 0 && n > d {
					if v := resp.Header.Get(DefaultVersionHeader); resp.StatusCode == http.StatusOK && v == "v1" {
						lateOK++
					} else {
						lateWrong = append(lateWrong, strconv.Itoa(resp.StatusCode)+" from "+v)
					}
				}
				mu.Unlock()
			}
		})
	}

	waitFor(t, "traffic to both versions", func() bool { return ca.hits.Load() > 20 && st.hits.Load() > 20 })
	ca.Close()
	select {
	case <-down:
	case <-ctx.Done():
		t.Fatal("the canary was never marked down")
	}
	waitFor(t, "traffic after the canary went down", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return lateOK+len(lateWrong) >= 200
	})
	stop()
	workers.Wait()

	if len(lateWrong) > 0 {
		t.Errorf("%d requests sent after the canary was marked down were not served by stable: %v", len(lateWrong), lateWrong)
	}
	for _, f := range failures {
		if f.seq > downSeq.Load() || f.code != http.StatusBadGateway {
			t.Errorf("request #%d got %d; the canary went down at #%d", f.seq, f.code, downSeq.Load())
		}
	}
	var got uint64
	waitFor(t, "the proxy to count the failures", func() bool {
		got = p.Stats().Canary.TransportErrors
		return got >= uint64(len(failures))
	})
	if got != uint64(len(failures)) {
		t.Errorf("proxy counted %d transport errors, clients saw %d failures", got, len(failures))
	}
	t.Logf("%d requests failed between the close and the mark-down at #%d", len(failures), downSeq.Load())
}
