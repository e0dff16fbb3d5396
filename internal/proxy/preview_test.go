package proxy

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// The preview sends every request to the canary at weight 0, counted as
// the canary's, while the proxy's own address keeps every user on the
// stable; with no canary, or one shut off by a rollback, it answers 503.
func TestPreviewServesTheCanaryAlone(t *testing.T) {
	st, ca := newUpstream(t, "v1"), newUpstream(t, "v2")
	p := newProxy(t, Config{Stable: Upstream{Version: "v1"}})
	setEndpoints(t, p, RoleStable, "v1", st)
	preview := httptest.NewServer(p.Preview())
	t.Cleanup(preview.Close)
	client := &http.Client{}

	if code, _, body := get(t, client, preview.URL+"/x"); code != http.StatusServiceUnavailable {
		t.Fatalf("preview with no canary: %d %q, want 503", code, body)
	}
	setEndpoints(t, p, RoleCanary, "v2", ca)
	if seen := served(t, preview.URL, 20); seen["v2"] != 20 {
		t.Errorf("preview served %v, want v2 only", seen)
	}
	if seen := served(t, front(t, p), 20); seen["v1"] != 20 {
		t.Errorf("the proxy's own address served %v at weight 0, want v1 only", seen)
	}
	if s := settled(t, p, 40); s.Canary.Requests != 20 || s.Stable.Requests != 20 {
		t.Errorf("stats canary %d stable %d, want 20 each: the preview's requests are the canary's", s.Canary.Requests, s.Stable.Requests)
	}
	if code, version, _ := get(t, client, preview.URL+"/x"); code != http.StatusOK || version != "v2" {
		t.Errorf("preview answered %d with version header %q, want 200 from v2", code, version)
	}

	p.SetCanaryAllowed(false)
	if code, _, _ := get(t, client, preview.URL+"/x"); code != http.StatusServiceUnavailable {
		t.Errorf("preview of a shut-off canary: %d, want 503", code)
	}
	if ca.hits.Load() != 21 {
		t.Errorf("canary got %d requests, want the 21 of the preview", ca.hits.Load())
	}
}
