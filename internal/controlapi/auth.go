package controlapi

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"
)

// Role is what the holder of a token may do. Each role may do what the
// roles before it may.
type Role string

const (
	// RoleViewer reads: rollouts, their history and samples.
	RoleViewer Role = "viewer"
	// RoleOperator also steers rollouts: deploy, promote, pause, resume,
	// set-weight, approve, reject, abort, retry, undo, and reload.
	RoleOperator Role = "operator"
	// RoleAdmin also manages tokens and the cookie keys.
	RoleAdmin Role = "admin"
	// RoleOFREP is an application's: it evaluates flags and reports
	// their outcomes on the OFREP listener, and may do nothing on the
	// control API. It is outside the order of Roles, and the OFREP
	// listener takes no other role: an application's token cannot steer
	// a rollout, and an operator's does not leak into an application.
	RoleOFREP Role = "ofrep"
)

// Roles lists the control API's roles from the least to the most allowed.
var Roles = []Role{RoleViewer, RoleOperator, RoleAdmin}

// AdminName names the daemon's own token, kept in its state directory:
// the admin token every daemon has.
const AdminName = "admin"

// rank orders the roles; an unknown role ranks below every known one.
func (r Role) rank() int {
	for i, known := range Roles {
		if r == known {
			return i
		}
	}
	return -1
}

// Valid reports whether r is one of Roles or RoleOFREP.
func (r Role) Valid() bool { return r.rank() >= 0 || r == RoleOFREP }

// allows reports whether r may do what need may on the control API.
func (r Role) allows(need Role) bool { return r.rank() >= 0 && r.rank() >= need.rank() }

// Identity is who a request authenticated as: the token's name, which the
// history records as the actor, and its role.
type Identity struct {
	Name string `json:"name"`
	Role Role   `json:"role"`
}

// Authenticator tells who holds a bearer token; ok is false for a token
// it does not know.
type Authenticator interface {
	Authenticate(ctx context.Context, token string) (id Identity, ok bool, err error)
}

// SingleToken authenticates one secret as the admin: a daemon's own
// token, or a test's.
type SingleToken string

// Authenticate implements Authenticator. Both sides are hashed before the
// constant-time comparison, so neither the content nor the length of the
// token leaks through timing; an empty SingleToken knows no token.
func (t SingleToken) Authenticate(_ context.Context, token string) (Identity, bool, error) {
	want, got := sha256.Sum256([]byte(t)), sha256.Sum256([]byte(token))
	if t == "" || subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
		return Identity{}, false, nil
	}
	return Identity{Name: AdminName, Role: RoleAdmin}, true, nil
}

// TokenInfo describes a named token, never its secret.
type TokenInfo struct {
	Name    string    `json:"name"`
	Role    Role      `json:"role"`
	Created time.Time `json:"created"`
}

// NewToken is a token just made: its description and its secret, which
// is shown this once and kept only hashed.
type NewToken struct {
	TokenInfo
	Token string `json:"token"`
}

// TokenRequest is the body of POST /v1/tokens.
type TokenRequest struct {
	Name string `json:"name"`
	Role Role   `json:"role"`
}

// TokenList is the body of GET /v1/tokens.
type TokenList struct {
	Tokens []TokenInfo `json:"tokens"`
}

// TokenKeeper is a Backend that makes, lists and revokes named tokens.
type TokenKeeper interface {
	CreateToken(ctx context.Context, name string, role Role) (NewToken, error)
	Tokens(ctx context.Context) ([]TokenInfo, error)
	RevokeToken(ctx context.Context, name string) error
}

// ErrTokenNotFound is returned (wrapped) for a named token that does not
// exist.
var ErrTokenNotFound = errors.New("no such token")

type identityKey struct{}

// IdentityOf returns who the request in ctx authenticated as.
func IdentityOf(ctx context.Context) (Identity, bool) {
	id, ok := ctx.Value(identityKey{}).(Identity)
	return id, ok
}

// requireToken is RequireToken logging to the server's log, which also
// takes the dashboard's session cookie in place of a token from a request
// that has no Authorization header.
func (s server) requireToken(auth Authenticator, next http.Handler) http.Handler {
	bearerOnly := RequireToken(auth, s.log, next)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(r.Header.Values("Authorization")) == 0 && hasCookie(r, SessionCookie) {
			// The dashboard: a browser's session cookie stands for the token.
			s.serveSession(w, r, auth, next)
			return
		}
		bearerOnly.ServeHTTP(w, r)
	})
}

// RequireToken lets a request through to next only with a bearer token
// auth knows, in exactly one Authorization header, and tells next who
// holds it (IdentityOf). Refusals are 401 with a JSON error, logged at
// debug level to log (nil discards) without the token given. The OFREP
// listener guards its routes with it too.
func RequireToken(auth Authenticator, log *slog.Logger, next http.Handler) http.Handler {
	s := server{log: orDiscard(log)}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// A second header could hide a forged token behind a valid
		// one, or the other way round, depending on who reads it.
		headers := r.Header.Values("Authorization")
		given, ok := "", len(headers) == 1
		if ok {
			given, ok = bearer(headers[0])
		}
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="pipit"`)
			s.writeError(w, http.StatusUnauthorized, "missing bearer token: send one Authorization: Bearer header")
			return
		}
		id, ok, err := auth.Authenticate(r.Context(), given)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		if !ok {
			s.log.Debug("token rejected", "remote", r.RemoteAddr, "path", r.URL.Path)
			w.Header().Set("WWW-Authenticate", `Bearer realm="pipit", error="invalid_token"`)
			s.writeError(w, http.StatusUnauthorized, "invalid bearer token")
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), identityKey{}, id)))
	})
}

// as serves h to identities whose role allows what need allows, and
// refuses the others with 403 and what they would need.
func (s server) as(need Role, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, _ := IdentityOf(r.Context())
		if !id.Role.allows(need) {
			s.writeError(w, http.StatusForbidden, fmt.Sprintf("token %q has the role %s; %s %s needs %s or above",
				id.Name, id.Role, r.Method, r.URL.Path, need))
			return
		}
		h(w, r)
	}
}

// hasCookie reports whether the request carries a cookie named name.
func hasCookie(r *http.Request, name string) bool {
	_, err := r.Cookie(name)
	return err == nil
}
