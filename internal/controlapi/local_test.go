package controlapi

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestLocalDashboardNeedsNoLoginButCSRF: the page's first request gets a
// session without a login, in the name given; actions still need its
// CSRF token; no token opens the API, and a request naming another host
// than a loopback one is refused.
func TestLocalDashboardNeedsNoLoginButCSRF(t *testing.T) {
	f := newFake()
	srv := httptest.NewServer(NewLocalDashboard(f, "dana", nil))
	t.Cleanup(srv.Close)
	u := &uiServer{Server: srv}

	code, body, h := u.browserCall(t, "GET", "/ui/session", "", "", nil)
	var info SessionInfo
	if code != http.StatusOK || json.Unmarshal(body, &info) != nil || info.Name != "dana" || info.Role != RoleOperator || info.CSRF == "" ||
		!info.Automatic {
		t.Fatalf("GET /ui/session without a cookie: %d %s, want a session of dana", code, body)
	}
	cookie := (&http.Response{Header: h}).Cookies()[0].Value
	if code, body, _ := u.browserCall(t, "GET", "/ui/session", "", cookie, nil); code != http.StatusOK || !strings.Contains(string(body), info.CSRF) {
		t.Errorf("GET /ui/session with the cookie: %d %s, want the same session", code, body)
	}

	pause := `{"kind":"pause","actor":"mallory"}`
	if code, _, _ := u.browserCall(t, "POST", "/v1/rollouts/web/commands", pause, cookie, nil); code != http.StatusForbidden {
		t.Errorf("a command without the CSRF token: %d, want 403", code)
	}
	if code, body, _ := u.browserCall(t, "POST", "/v1/rollouts/web/commands", pause, cookie, map[string]string{CSRFHeader: info.CSRF}); code != http.StatusOK {
		t.Fatalf("a command with the CSRF token: %d %s", code, body)
	}
	if len(f.submitted) != 1 || f.submitted[0].Actor != "dana" {
		t.Errorf("submitted %+v, want one command by dana", f.submitted)
	}
	if code, _, _ := u.browserCall(t, "POST", "/ui/login", `{"token":"guess"}`, "", nil); code != http.StatusUnauthorized {
		t.Errorf("a login with a guessed token: %d, want 401", code)
	}
	if code, _, _ := u.browserCall(t, "GET", "/v1/rollouts", "", "", map[string]string{"Authorization": "Bearer guess"}); code != http.StatusUnauthorized {
		t.Errorf("a guessed bearer token: %d, want 401", code)
	}

	req, err := http.NewRequest("GET", srv.URL+"/ui/session", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = "attacker.example:80"
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMisdirectedRequest {
		t.Errorf("a request for host attacker.example: %d, want 421", resp.StatusCode)
	}
}

func TestLoopbackHost(t *testing.T) {
	for host, want := range map[string]bool{
		"127.0.0.1:3100": true, "127.0.0.1": true, "[::1]:3100": true, "localhost:3100": true, "LOCALHOST": true,
		"127.1.2.3:80": true, "attacker.example": false, "attacker.example:3100": false, "10.0.0.1:3100": false,
		"localhost.attacker.example:3100": false, "": false,
	} {
		if got := loopbackHost(host); got != want {
			t.Errorf("loopbackHost(%q) = %v, want %v", host, got, want)
		}
	}
}
