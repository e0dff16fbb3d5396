package proxy

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/testenv/nettest"
)

// failing is an upstream that answers every request with code and counts
// them.
func failing(t *testing.T, code int) (*httptest.Server, *atomic.Int64) {
	var hits atomic.Int64
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.WriteHeader(code)
	}))
	t.Cleanup(s.Close)
	return s, &hits
}

func waitEjected(t *testing.T, ch <-chan string) string {
	t.Helper()
	select {
	case reason := <-ch:
		return reason
	case <-time.After(10 * time.Second):
		t.Fatal("the canary was never ejected")
		return ""
	}
}

func TestOutlierEjectsFailingCanary(t *testing.T) {
	for _, fe := range frontends {
		t.Run(fe.name, func(t *testing.T) {
			st := newUpstream(t, "v1")
			bad, badHits := failing(t, http.StatusInternalServerError)
			ejected := make(chan string, 1)
			p := newProxy(t, Config{
				Stable: st.upstream(t), Canary: &Upstream{Version: "v2", URL: nettest.MustURL(t, bad.URL)},
				Weight: v1alpha1.FullWeight, OutlierFailures: 3,
				OnEject: func(role, reason string) { ejected <- role + ": " + reason },
			})
			url := fe.serve(t, p)
			client := &http.Client{}
			for range 3 {
				if code, _, _ := get(t, client, url); code != http.StatusInternalServerError {
					t.Fatalf("canary answered %d", code)
				}
			}
			reason := waitEjected(t, ejected)
			if !strings.HasPrefix(reason, "canary: 3 failures in a row") {
				t.Errorf("OnEject reason %q", reason)
			}
			// At 100% weight, everything goes to stable now.
			for range 20 {
				if code, version, _ := get(t, client, url); code != http.StatusOK || version != "v1" {
					t.Fatalf("after the ejection: %d from %q", code, version)
				}
			}
			if badHits.Load() != 3 {
				t.Errorf("the ejected canary got %d requests, want 3", badHits.Load())
			}
			if version, reason, ok := p.Ejected(); !ok || version != "v2" || !strings.HasPrefix(reason, "3 failures") {
				t.Errorf("Ejected() = %q, %q, %v", version, reason, ok)
			}

			// The daemon lets it back in: it is judged afresh.
			p.SetCanaryAllowed(true)
			if _, _, ok := p.Ejected(); ok {
				t.Error("still ejected after SetCanaryAllowed(true)")
			}
			for range 2 {
				if code, _, _ := get(t, client, url); code != http.StatusInternalServerError {
					t.Fatalf("let back in, the canary did not answer: %d", code)
				}
			}
			nettest.Eventually(t, "the second failure to count", func() bool { return settled(t, p, 25).Canary.Requests == 5 })
			select {
			case r := <-ejected:
				t.Fatalf("ejected again after only 2 failures: %s", r)
			default:
			}
			get(t, client, url)
			waitEjected(t, ejected)

			// A new canary version starts with a clean record.
			v3 := newUpstream(t, "v3")
			if err := p.setUpstreams(st.upstream(t), &Upstream{Version: "v3", URL: nettest.MustURL(t, v3.URL)}); err != nil {
				t.Fatal(err)
			}
			if _, version, _ := get(t, client, url); version != "v3" {
				t.Errorf("a new canary got no traffic: answered by %q", version)
			}
		})
	}
}

func TestOutlierCountsTransportErrorsAndSparesStable(t *testing.T) {
	for _, fe := range frontends {
		t.Run(fe.name, func(t *testing.T) {
			st, stHits := failing(t, http.StatusServiceUnavailable)
			ejected := make(chan string, 4)
			p := newProxy(t, Config{
				Stable: Upstream{Version: "v1", URL: nettest.MustURL(t, st.URL)},
				Canary: &Upstream{Version: "v2", URL: nettest.DeadURL(t)},
				Weight: 50_000, OutlierFailures: 2,
				OnEject: func(role, reason string) { ejected <- role + ": " + reason },
			})
			url := fe.serve(t, p)
			client := &http.Client{}
			for stHits.Load() < 20 {
				code, _, _ := get(t, client, url)
				if code != http.StatusServiceUnavailable && code != http.StatusBadGateway {
					t.Fatalf("answered %d", code)
				}
			}
			reason := waitEjected(t, ejected)
			if !strings.Contains(reason, "connect") && !strings.Contains(reason, "refused") {
				t.Errorf("reason %q does not name the connection failure", reason)
			}
			select {
			case r := <-ejected:
				t.Errorf("ejected twice (stable?): %s", r)
			default:
			}
		})
	}
}

func TestOutlierOff(t *testing.T) {
	bad, _ := failing(t, http.StatusInternalServerError)
	st := newUpstream(t, "v1")
	p := newProxy(t, Config{
		Stable: st.upstream(t), Canary: &Upstream{Version: "v2", URL: nettest.MustURL(t, bad.URL)},
		Weight: v1alpha1.FullWeight, OutlierFailures: -1,
	})
	url := serveWith(t, p, ServerConfig{})
	for range 20 {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusInternalServerError {
			t.Fatalf("answered %d with outlier detection off", resp.StatusCode)
		}
	}
	if _, _, ok := p.Ejected(); ok {
		t.Error("ejected with outlier detection off")
	}
}
