package controlapi

import (
	"bufio"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// uiTokens are the tokens the dashboard tests log in with.
var uiTokens = tokenTable{
	"op-secret":     {Name: "deployer", Role: RoleOperator},
	"viewer-secret": {Name: "watcher", Role: RoleViewer},
}

// uiServer is a control API over f whose sessions run on a clock the test
// moves.
type uiServer struct {
	*httptest.Server
	mu  sync.Mutex
	now time.Time
}

func newUIServer(t *testing.T, f Backend, auth Authenticator, maxStreams int, tls bool) *uiServer {
	t.Helper()
	u := &uiServer{now: time.Date(2026, 7, 1, 12, 0, 0, 0, time.UTC)}
	sess := newSessions()
	sess.now = func() time.Time { u.mu.Lock(); defer u.mu.Unlock(); return u.now }
	h := newHandler(f, auth, nil, nil, sess, maxStreams, "")
	if tls {
		u.Server = httptest.NewTLSServer(h)
	} else {
		u.Server = httptest.NewServer(h)
	}
	t.Cleanup(u.Close)
	return u
}

func (u *uiServer) advance(d time.Duration) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.now = u.now.Add(d)
}

// browserCall sends a request as a browser would: with a session cookie,
// and the headers given (Origin, Sec-Fetch-Site, X-CSRF-Token).
func (u *uiServer) browserCall(t *testing.T, method, path, body, cookie string, headers map[string]string) (int, []byte, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, u.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if cookie != "" {
		req.AddCookie(&http.Cookie{Name: SessionCookie, Value: cookie})
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := u.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	if _, err := bufio.NewReader(resp.Body).WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, []byte(b.String()), resp.Header
}

// login logs in with token from the server's own origin and returns the
// session cookie and the CSRF token.
func (u *uiServer) login(t *testing.T, token string) (*http.Cookie, SessionInfo) {
	t.Helper()
	code, body, h := u.browserCall(t, "POST", "/ui/login", `{"token":"`+token+`"}`, "",
		map[string]string{"Origin": u.URL, "Sec-Fetch-Site": "same-origin"})
	if code != http.StatusOK {
		t.Fatalf("login: %d %s", code, body)
	}
	var info SessionInfo
	if err := json.Unmarshal(body, &info); err != nil || info.CSRF == "" {
		t.Fatalf("login answer %s: %v", body, err)
	}
	resp := http.Response{Header: h}
	for _, c := range resp.Cookies() {
		if c.Name == SessionCookie {
			return c, info
		}
	}
	t.Fatalf("login set no %s cookie: %v", SessionCookie, h)
	return nil, SessionInfo{}
}

// The session cookie is out of scripts' reach, sent to this site alone,
// and Secure when the API is served over TLS; the login names who logged
// in. A wrong token or a login from another site gets no cookie.
func TestDashboardLoginSetsAHardenedCookie(t *testing.T) {
	for _, tls := range []bool{false, true} {
		u := newUIServer(t, newFake(), uiTokens, MaxStreams, tls)
		c, info := u.login(t, "op-secret")
		if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/" || c.Secure != tls || c.MaxAge != int(SessionTTL.Seconds()) {
			t.Errorf("TLS %v: cookie %+v, want HttpOnly, SameSite=Strict, Path=/, Secure=%v, Max-Age %v", tls, c, tls, SessionTTL)
		}
		if info.Name != "deployer" || info.Role != RoleOperator || len(c.Value) < 40 || strings.Contains(c.Value, "op-secret") {
			t.Errorf("login answer %+v, cookie %q", info, c.Value)
		}
	}
	u := newUIServer(t, newFake(), uiTokens, MaxStreams, false)
	for _, tc := range loginRefusals {
		headers := map[string]string{"Origin": u.URL}
		for k, v := range tc.headers {
			headers[k] = v
		}
		code, body, h := u.browserCall(t, "POST", "/ui/login", tc.body, "", headers)
		if code != tc.want || h.Get("Set-Cookie") != "" {
			t.Errorf("%s: %d %s (cookie %q), want %d and no cookie", tc.name, code, body, h.Get("Set-Cookie"), tc.want)
		}
	}
}

var loginRefusals = []struct {
	name    string
	body    string
	headers map[string]string
	want    int
}{
	{"wrong token", `{"token":"guess"}`, nil, http.StatusUnauthorized},
	{"empty token", `{"token":""}`, nil, http.StatusUnauthorized},
	{"from another site's page (Origin)", `{"token":"op-secret"}`, map[string]string{"Origin": "https://evil.example"}, http.StatusForbidden},
	{"from another site's page (Sec-Fetch-Site)", `{"token":"op-secret"}`, map[string]string{"Sec-Fetch-Site": "cross-site"}, http.StatusForbidden},
	{"unknown field", `{"token":"op-secret","role":"admin"}`, nil, http.StatusBadRequest},
}

// attacks are requests an attacker can make with, or instead of, an
// operator's session: each is refused, and nothing is submitted.
var attacks = []struct {
	name, cookie, csrf string
	headers            map[string]string
	want               int
	wantMsg            string
}{
	{"forged cookie", "forged-session-id", "", nil, http.StatusUnauthorized, "session expired or unknown"},
	{"no CSRF token", "", "none", nil, http.StatusForbidden, "X-CSRF-Token"},
	{"forged CSRF token", "", "forged", nil, http.StatusForbidden, "X-CSRF-Token"},
	{"cross-site Origin", "", "", map[string]string{"Origin": "https://evil.example"}, http.StatusForbidden, "another site"},
	{"cross-site fetch", "", "", map[string]string{"Sec-Fetch-Site": "cross-site"}, http.StatusForbidden, "another site"},
	{"a bad bearer beside the cookie", "", "", map[string]string{"Authorization": "Bearer forged"}, http.StatusUnauthorized, "invalid bearer token"},
}

// An operator's session acts with its CSRF token from its own origin, as
// the token's name; forged cookies and CSRF tokens, other sites, expired
// and revoked sessions, and a viewer's session are refused, with why.
func TestDashboardSessionRefusesAttackers(t *testing.T) {
	f := newFake()
	tokens := tokenTable{"op-secret": uiTokens["op-secret"], "viewer-secret": uiTokens["viewer-secret"]}
	u := newUIServer(t, f, tokens, MaxStreams, false)
	c, info := u.login(t, "op-secret")
	pause := `{"kind":"pause","actor":"mallory"}`
	for _, a := range attacks {
		cookie, headers := c.Value, map[string]string{"Origin": u.URL, CSRFHeader: info.CSRF}
		if a.cookie != "" {
			cookie = a.cookie
		}
		switch a.csrf {
		case "none":
			delete(headers, CSRFHeader)
		case "forged":
			headers[CSRFHeader] = "forged"
		}
		for k, v := range a.headers {
			headers[k] = v
		}
		code, body, _ := u.browserCall(t, "POST", "/v1/rollouts/web/commands", pause, cookie, headers)
		if code != a.want || !strings.Contains(errorOf(t, body), a.wantMsg) {
			t.Errorf("%s: %d %s, want %d saying %q", a.name, code, body, a.want, a.wantMsg)
		}
	}
	if len(f.submitted) != 0 {
		t.Fatalf("attacks submitted %+v", f.submitted)
	}
	own := map[string]string{"Origin": u.URL, "Sec-Fetch-Site": "same-origin", CSRFHeader: info.CSRF}
	if code, body, _ := u.browserCall(t, "POST", "/v1/rollouts/web/commands", pause, c.Value, own); code != http.StatusOK {
		t.Fatalf("the session's own action: %d %s", code, body)
	}
	if len(f.submitted) != 1 || f.submitted[0].Actor != "deployer" {
		t.Errorf("submitted %+v, want one command by the token's name deployer", f.submitted)
	}
	viewerRefused(t, u)
	u.advance(SessionTTL)
	if code, body, _ := u.browserCall(t, "GET", "/v1/rollouts", "", c.Value, nil); code != http.StatusUnauthorized {
		t.Errorf("an expired session reads: %d %s", code, body)
	}
	c, info = u.login(t, "op-secret")
	delete(tokens, "op-secret")
	if code, body, _ := u.browserCall(t, "GET", "/v1/rollouts", "", c.Value, nil); code != http.StatusUnauthorized || !strings.Contains(string(body), "revoked") {
		t.Errorf("a revoked token's session reads: %d %s", code, body)
	}
}

// viewerRefused: a viewer's session reads but may not act, and is told
// which role acting needs.
func viewerRefused(t *testing.T, u *uiServer) {
	t.Helper()
	c, info := u.login(t, "viewer-secret")
	if code, body, _ := u.browserCall(t, "GET", "/v1/rollouts/web", "", c.Value, nil); code != http.StatusOK {
		t.Errorf("a viewer's session reads: %d %s", code, body)
	}
	code, body, _ := u.browserCall(t, "POST", "/v1/rollouts/web/commands", `{"kind":"resume"}`, c.Value,
		map[string]string{"Origin": u.URL, CSRFHeader: info.CSRF})
	if code != http.StatusForbidden || !strings.Contains(errorOf(t, body), `token "watcher" has the role viewer`) ||
		!strings.Contains(errorOf(t, body), "needs operator") {
		t.Errorf("a viewer's action: %d %s, want 403 naming the role needed", code, body)
	}
}

// Logging out needs the CSRF token too (no forced logout), ends the
// session and deletes the cookie.
func TestDashboardLogout(t *testing.T) {
	u := newUIServer(t, newFake(), uiTokens, MaxStreams, false)
	c, info := u.login(t, "op-secret")
	if code, _, _ := u.browserCall(t, "POST", "/ui/logout", "", c.Value, map[string]string{"Origin": u.URL}); code != http.StatusForbidden {
		t.Errorf("logout without the CSRF token: %d, want 403", code)
	}
	code, body, _ := u.browserCall(t, "GET", "/ui/session", "", c.Value, nil)
	var got SessionInfo
	if code != http.StatusOK || json.Unmarshal(body, &got) != nil || got.CSRF != info.CSRF || got.Name != "deployer" {
		t.Errorf("session: %d %s", code, body)
	}
	code, _, h := u.browserCall(t, "POST", "/ui/logout", "", c.Value, map[string]string{"Origin": u.URL, CSRFHeader: info.CSRF})
	if code != http.StatusNoContent || !strings.Contains(h.Get("Set-Cookie"), "Max-Age=0") {
		t.Errorf("logout: %d, Set-Cookie %q", code, h.Get("Set-Cookie"))
	}
	if code, _, _ := u.browserCall(t, "GET", "/ui/session", "", c.Value, nil); code != http.StatusUnauthorized {
		t.Errorf("session after logout: %d, want 401", code)
	}
}

// The page and the vendored chart library are served from the binary,
// with a policy that runs this origin's scripts alone and forbids framing.
func TestDashboardFilesAreEmbedded(t *testing.T) {
	u := newUIServer(t, newFake(), uiTokens, MaxStreams, false)
	for path, want := range map[string]string{"/ui/": "<title>pipit</title>", "/ui/app.js": "EventSource", "/ui/vendor/uplot/uPlot.iife.min.js": "uPlot"} {
		code, body, h := u.browserCall(t, "GET", path, "", "", nil)
		if code != http.StatusOK || !strings.Contains(string(body), want) {
			t.Errorf("%s: %d, want 200 holding %q", path, code, want)
		}
		if csp := h.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") {
			t.Errorf("%s: Content-Security-Policy %q", path, csp)
		}
	}
}
