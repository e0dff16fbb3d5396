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
	"github.com/pipit-dev/pipit/internal/testenv/nettest"
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
	r := &weightRun{st: newSeqUpstream(t), ca: newSeqUpstream(t)}
	r.p = newProxy(t, Config{
		Stable: Upstream{Version: "v1", URL: nettest.MustURL(t, r.st.URL)},
		Canary: &Upstream{Version: "v2", URL: nettest.MustURL(t, r.ca.URL)},
		Weight: 50_000,
	})
	url := fe.serve(t, r.p)

	targeter := func(tgt *vegeta.Target) error {
		tgt.Method, tgt.URL = http.MethodGet, url
		tgt.Header = http.Header{seqHeader: {strconv.FormatUint(r.seq.Add(1), 10)}}
		return nil
	}

	changed, attackDone := make(chan struct{}), make(chan struct{})
	go r.changeWeights(t, changed, attackDone)

	attacker := vegeta.NewAttacker(vegeta.Timeout(10*time.Second), vegeta.Workers(8), vegeta.MaxWorkers(64))
	go r.stopAfterRollback(attacker, changed)
	var m vegeta.Metrics
	for res := range attacker.Attack(targeter, vegeta.Rate{Freq: 400, Per: time.Second}, 0, "weights") {
		m.Add(res)
	}
	m.Close()
	close(attackDone)
	<-changed
	r.check(t, &m)
}

// weightRun is what testLoadWeightChanges's stages share: the proxy, its
// two upstreams, the number of the last request sent and that of the last
// one sent before the rollback.
type weightRun struct {
	p             *Proxy
	st, ca        *seqUpstream
	seq, finalSeq atomic.Uint64
}

// changeWeights changes the weight 200 times under the traffic, then rolls
// the canary back and notes the request number at which it did, and closes
// changed.
func (r *weightRun) changeWeights(t *testing.T, changed chan<- struct{}, attackDone <-chan struct{}) {
	defer close(changed)
	// Paced by the traffic rather than the clock, so a busy machine
	// still sees every change under load: one change every 3 requests,
	// the last at about request 600.
	rng := rand.New(rand.NewPCG(7, 11))
	for i := range uint64(200) {
		for r.seq.Load() < 3*(i+1) {
			select {
			case <-attackDone:
				return
			case <-time.After(time.Millisecond):
			}
		}
		if err := r.p.SetWeight(v1alpha1.Percent(rng.Int32N(int32(v1alpha1.FullWeight) + 1))); err != nil {
			t.Error(err)
		}
	}
	if err := r.p.SetWeight(0); err != nil {
		t.Error(err)
	}
	r.p.SetCanaryAllowed(false)
	r.finalSeq.Store(r.seq.Load())
}

// stopAfterRollback stops the attack 300 requests after the final weight
// change rather than after a fixed time, so that a busy machine, which
// sends fewer requests a second, still sees every change under load.
func (r *weightRun) stopAfterRollback(attacker *vegeta.Attacker, changed <-chan struct{}) {
	defer attacker.Stop()
	limit := time.After(2 * time.Minute)
	select {
	case <-changed:
	case <-limit:
		return
	}
	for final := r.finalSeq.Load(); final != 0 && r.seq.Load() < final+300; {
		select {
		case <-limit:
			return
		case <-time.After(time.Millisecond):
		}
	}
}

// check reads the attack's results: every request served, both versions
// served, and nothing sent after the rollback served by the canary.
func (r *weightRun) check(t *testing.T, m *vegeta.Metrics) {
	st, ca := r.st, r.ca
	if r.finalSeq.Load() == 0 {
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
	if after := r.seq.Load() - r.finalSeq.Load(); after < 100 {
		t.Errorf("only %d requests after the final weight 0; the test proves little", after)
	}
	if got, final := ca.maxSeq.Load(), r.finalSeq.Load(); got > final {
		t.Errorf("canary served request #%d, sent after weight 0 took effect at #%d", got, final)
	}
	s := settled(t, r.p, m.Requests)
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
	r := &canaryDeath{down: make(chan struct{})}
	cfg := Config{
		Stable:          Upstream{Version: "v1", URL: nettest.MustURL(t, st.URL)},
		Canary:          &Upstream{Version: "v2", URL: nettest.MustURL(t, ca.URL)},
		Weight:          50_000,
		OutlierFailures: -1,
	}
	if eject {
		cfg.OutlierFailures = 3
		cfg.OnEject = func(string, string) { r.markDown() }
	}
	p := newProxy(t, cfg)
	url := fe.serve(t, p)

	if !eject {
		r.playDaemon(t, p)
	}

	ctx, stop := context.WithTimeout(context.Background(), 10*time.Second)
	defer stop()
	client := &http.Client{Timeout: 5 * time.Second}
	var workers sync.WaitGroup
	for range 4 {
		workers.Go(func() { r.send(ctx, t, client, url) })
	}

	r.closeCanary(ctx, t, st, ca)
	stop()
	workers.Wait()

	r.check(t, p)
}

// canaryDeath is what testCanaryDies's stages share: the number of the
// last request sent, that of the last one sent before the canary was
// marked down, and what the clients saw.
type canaryDeath struct {
	seq, downSeq atomic.Uint64
	down         chan struct{}

	mu        sync.Mutex
	failures  []seqFailure
	lateOK    int
	lateWrong []string
}

// seqFailure is a request that did not get a 200, by number.
type seqFailure struct {
	seq  uint64
	code int
}

// markDown notes the request number at which the canary was marked down.
func (r *canaryDeath) markDown() {
	r.downSeq.Store(r.seq.Load())
	close(r.down)
}

// playDaemon runs a health checker that, as the daemon does, sets the
// weight to 0 on "canary down", and waits for both upstreams to be found
// healthy.
func (r *canaryDeath) playDaemon(t *testing.T, p *Proxy) {
	_, changes := runChecker(t, p, health.Config{Interval: 50 * time.Millisecond, FailureThreshold: 2, PassiveFailures: 5},
		func(c change) {
			if c.role == RoleCanary && !c.healthy && r.downSeq.Load() == 0 {
				if err := p.SetWeight(0); err != nil {
					t.Error(err)
				}
				r.markDown()
			}
		})
	for range 2 {
		if c := nextChange(t, changes); !c.healthy {
			t.Fatalf("change %+v before the canary was closed", c)
		}
	}
}

// send is one client sending numbered requests until ctx ends, noting the
// failures and who served each request sent after the mark-down.
func (r *canaryDeath) send(ctx context.Context, t *testing.T, client *http.Client, url string) {
	for ctx.Err() == nil {
		n := r.seq.Add(1)
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
		r.mu.Lock()
		if resp.StatusCode != http.StatusOK {
			r.failures = append(r.failures, seqFailure{n, resp.StatusCode})
		}
		if d := r.downSeq.Load(); d != 0 && n > d {
			if v := resp.Header.Get(DefaultVersionHeader); resp.StatusCode == http.StatusOK && v == "v1" {
				r.lateOK++
			} else {
				r.lateWrong = append(r.lateWrong, strconv.Itoa(resp.StatusCode)+" from "+v)
			}
		}
		r.mu.Unlock()
	}
}

// closeCanary closes the canary once both versions serve traffic, waits
// for it to be marked down, then for 200 requests more.
func (r *canaryDeath) closeCanary(ctx context.Context, t *testing.T, st, ca *seqUpstream) {
	nettest.Eventually(t, "traffic to both versions", func() bool { return ca.hits.Load() > 20 && st.hits.Load() > 20 })
	ca.Close()
	select {
	case <-r.down:
	case <-ctx.Done():
		t.Fatal("the canary was never marked down")
	}
	nettest.Eventually(t, "traffic after the canary went down", func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.lateOK+len(r.lateWrong) >= 200
	})
}

// check reads what the clients saw: every request sent after the
// mark-down served by stable, only 502s before it, each counted by the
// proxy.
func (r *canaryDeath) check(t *testing.T, p *Proxy) {
	if len(r.lateWrong) > 0 {
		t.Errorf("%d requests sent after the canary was marked down were not served by stable: %v", len(r.lateWrong), r.lateWrong)
	}
	for _, f := range r.failures {
		if f.seq > r.downSeq.Load() || f.code != http.StatusBadGateway {
			t.Errorf("request #%d got %d; the canary went down at #%d", f.seq, f.code, r.downSeq.Load())
		}
	}
	var got uint64
	nettest.Eventually(t, "the proxy to count the failures", func() bool {
		got = p.Stats().Canary.TransportErrors
		return got >= uint64(len(r.failures))
	})
	if got != uint64(len(r.failures)) {
		t.Errorf("proxy counted %d transport errors, clients saw %d failures", got, len(r.failures))
	}
	t.Logf("%d requests failed between the close and the mark-down at #%d", len(r.failures), r.downSeq.Load())
}
