package controlapi

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
)

// NewLocalDashboard serves the web dashboard, and the control API routes
// it uses, over b to the person at this machine, without a login, as
// `kubectl argo rollouts dashboard` does: the page's first request starts
// a session in the name of who, with the role operator (b decides what
// that person may do: a cluster's RBAC, for `pipit dashboard`). Every
// action still needs the session's CSRF token from the dashboard's own
// origin, and a request whose Host is not a loopback address or
// "localhost" is refused, so that another site whose name resolves to
// 127.0.0.1 (DNS rebinding) cannot read the session's CSRF token from a
// browser on this machine. Serve it on a loopback address only.
func NewLocalDashboard(b Backend, who string, log *slog.Logger) http.Handler {
	secret := rand.Text()
	auth := localAuth{secret: sha256.Sum256([]byte(secret)), id: Identity{Name: who, Role: RoleOperator}}
	h := newHandler(b, auth, nil, log, newSessions(), MaxStreams, secret)
	s, api := server{log: orDiscard(log)}, h.Handler
	h.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !loopbackHost(r.Host) {
			s.writeError(w, http.StatusMisdirectedRequest, fmt.Sprintf(
				"this dashboard answers on a loopback address only (127.0.0.1, [::1] or localhost), not %q", r.Host))
			return
		}
		api.ServeHTTP(w, r)
	})
	return h
}

// localAuth knows one secret, which never leaves the process: the
// dashboard's automatic session stands for it.
type localAuth struct {
	secret [sha256.Size]byte
	id     Identity
}

// Authenticate implements Authenticator.
func (a localAuth) Authenticate(_ context.Context, token string) (Identity, bool, error) {
	got := sha256.Sum256([]byte(token))
	if subtle.ConstantTimeCompare(got[:], a.secret[:]) != 1 {
		return Identity{}, false, nil
	}
	return a.id, true, nil
}

// loopbackHost reports whether a Host header names this machine: a
// loopback IP address or "localhost", with or without a port.
func loopbackHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
