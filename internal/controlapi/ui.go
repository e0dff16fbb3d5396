package controlapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/pipit-dev/pipit/internal/dashboard"
)

// LoginRequest is the body of POST /ui/login.
type LoginRequest struct {
	Token string `json:"token"`
}

// SessionInfo answers a login and GET /ui/session: who the session is and
// the CSRF token its requests that change something must carry in the
// X-CSRF-Token header.
type SessionInfo struct {
	Identity
	CSRF string `json:"csrf"`
	// Automatic is set for a session given without a login (see
	// NewLocalDashboard): logging out of it would only start another.
	Automatic bool `json:"automatic,omitempty"`
}

// dashboardCSP lets the page run only its own files: no inline script, no
// other origin, no framing (clickjacking). uPlot sizes its elements with
// inline styles, hence style-src 'unsafe-inline'.
const dashboardCSP = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; " +
	"connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

// serveDashboard adds the dashboard's routes to mux: its files under
// /ui/, and the login, logout and session routes.
func (s server) serveDashboard(mux *http.ServeMux, auth Authenticator) {
	files := http.StripPrefix("/ui/", http.FileServerFS(dashboard.Files()))
	mux.Handle("GET /ui/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", dashboardCSP)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-cache")
		files.ServeHTTP(w, r)
	}))
	mux.Handle("GET /ui", http.RedirectHandler("/ui/", http.StatusMovedPermanently))
	mux.HandleFunc("POST /ui/login", func(w http.ResponseWriter, r *http.Request) { s.login(w, r, auth) })
	mux.HandleFunc("POST /ui/logout", s.logout)
	mux.HandleFunc("GET /ui/session", func(w http.ResponseWriter, r *http.Request) {
		if s.autoLogin != "" && !s.liveSession(r) {
			s.startSession(w, r, auth, s.autoLogin)
			return
		}
		sid, sess, ok := s.cookieSession(w, r)
		if !ok {
			return
		}
		id, ok := s.reauthenticate(w, r, auth, sid, sess)
		if ok {
			s.writeJSON(w, http.StatusOK, SessionInfo{Identity: id, CSRF: sess.csrf, Automatic: s.autoLogin != "" && sess.token == s.autoLogin})
		}
	})
}

// login trades a token for a session cookie. Only the dashboard's own
// origin may log in (no login CSRF), and the cookie is out of the page's
// script's reach (HttpOnly), sent to this site alone (SameSite=Strict),
// and over TLS only when the API is served over TLS (Secure).
func (s server) login(w http.ResponseWriter, r *http.Request, auth Authenticator) {
	if err := s.cross.Check(r); err != nil {
		s.writeError(w, http.StatusForbidden, "login refused: the request comes from another site")
		return
	}
	var req LoginRequest
	if status, err := decodeStrict(w, r, &req); err != nil {
		s.writeError(w, status, err.Error())
		return
	}
	s.startSession(w, r, auth, req.Token)
}

// startSession gives the browser a session for token, if auth knows it,
// and answers with who it is and the session's CSRF token.
func (s server) startSession(w http.ResponseWriter, r *http.Request, auth Authenticator, token string) {
	id, ok, err := auth.Authenticate(r.Context(), token)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if !ok {
		s.log.Debug("dashboard: login with an unknown token", "remote", r.RemoteAddr)
		s.writeError(w, http.StatusUnauthorized, "invalid token")
		return
	}
	if !id.Role.allows(RoleViewer) {
		s.writeError(w, http.StatusForbidden, fmt.Sprintf("token %q has the role %s, which may not use the dashboard", id.Name, id.Role))
		return
	}
	sid, csrf, err := s.sessions.create(token)
	if errors.Is(err, errTooManySessions) {
		s.writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	http.SetCookie(w, sessionCookie(r, sid, int(SessionTTL.Seconds())))
	s.log.Info("dashboard: logged in", "name", id.Name, "role", id.Role)
	s.writeJSON(w, http.StatusOK, SessionInfo{Identity: id, CSRF: csrf, Automatic: s.autoLogin != "" && token == s.autoLogin})
}

// logout ends the session; like every action it needs the CSRF token, so
// that another site cannot log a person out.
func (s server) logout(w http.ResponseWriter, r *http.Request) {
	sid, sess, ok := s.cookieSession(w, r)
	if !ok || !s.checkAction(w, r, sess) {
		return
	}
	s.sessions.drop(sid)
	http.SetCookie(w, sessionCookie(r, "", -1))
	w.WriteHeader(http.StatusNoContent)
}

// sessionCookie is the session cookie of value sid for maxAge seconds
// (negative: delete it).
func sessionCookie(r *http.Request, sid string, maxAge int) *http.Cookie {
	return &http.Cookie{
		Name: SessionCookie, Value: sid, Path: "/", MaxAge: maxAge,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil,
	}
}

// liveSession reports whether the request carries the cookie of a live
// session.
func (s server) liveSession(r *http.Request) bool {
	c, err := r.Cookie(SessionCookie)
	if err != nil {
		return false
	}
	_, ok := s.sessions.lookup(c.Value)
	return ok
}

// cookieSession finds the request's live session, and answers 401 when
// there is none: no cookie, or one the daemon never issued or that
// expired (which is then deleted from the browser).
func (s server) cookieSession(w http.ResponseWriter, r *http.Request) (string, session, bool) {
	c, err := r.Cookie(SessionCookie)
	if err != nil {
		s.writeError(w, http.StatusUnauthorized, "not logged in")
		return "", session{}, false
	}
	sess, ok := s.sessions.lookup(c.Value)
	if !ok {
		http.SetCookie(w, sessionCookie(r, "", -1))
		s.writeError(w, http.StatusUnauthorized, "session expired or unknown; log in again")
		return "", session{}, false
	}
	return c.Value, sess, true
}

// checkAction refuses a request that changes something unless it comes
// from the dashboard's own origin (Sec-Fetch-Site, Origin) and carries the
// session's CSRF token; it answers 403 and reports false then.
func (s server) checkAction(w http.ResponseWriter, r *http.Request, sess session) bool {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return true
	}
	if err := s.cross.Check(r); err != nil {
		s.writeError(w, http.StatusForbidden, "refused: the request comes from another site")
		return false
	}
	if !sess.csrfMatches(r.Header.Get(CSRFHeader)) {
		s.writeError(w, http.StatusForbidden, fmt.Sprintf("refused: missing or wrong %s header; reload the dashboard", CSRFHeader))
		return false
	}
	return true
}

// reauthenticate checks the session's token again, so that a revoked
// token's sessions end at once; such a session is dropped with 401.
func (s server) reauthenticate(w http.ResponseWriter, r *http.Request, auth Authenticator, sid string, sess session) (Identity, bool) {
	id, ok, err := auth.Authenticate(r.Context(), sess.token)
	if err != nil {
		s.fail(w, r, err)
		return Identity{}, false
	}
	if !ok {
		s.sessions.drop(sid)
		http.SetCookie(w, sessionCookie(r, "", -1))
		s.writeError(w, http.StatusUnauthorized, "the session's token was revoked; log in again")
		return Identity{}, false
	}
	return id, true
}

// serveSession serves next to the request's session, as the identity of
// its token, when the request passes checkAction.
func (s server) serveSession(w http.ResponseWriter, r *http.Request, auth Authenticator, next http.Handler) {
	sid, sess, ok := s.cookieSession(w, r)
	if !ok || !s.checkAction(w, r, sess) {
		return
	}
	id, ok := s.reauthenticate(w, r, auth, sid, sess)
	if ok {
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), identityKey{}, id)))
	}
}
