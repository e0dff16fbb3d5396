package controlapi

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// tokenTable authenticates the tokens of a map, as a daemon's store would.
type tokenTable map[string]Identity

func (tt tokenTable) Authenticate(_ context.Context, token string) (Identity, bool, error) {
	id, ok := tt[token]
	return id, ok, nil
}

// keeperBackend is the fake backend keeping named tokens in memory.
type keeperBackend struct {
	*fakeBackend
	made []TokenRequest
}

func (k *keeperBackend) CreateToken(_ context.Context, name string, role Role) (NewToken, error) {
	k.made = append(k.made, TokenRequest{Name: name, Role: role})
	return NewToken{TokenInfo: TokenInfo{Name: name, Role: role, Created: time.Unix(0, 0).UTC()}, Token: "s3cret"}, nil
}

func (k *keeperBackend) Tokens(context.Context) ([]TokenInfo, error) { return nil, nil }

func (k *keeperBackend) RevokeToken(_ context.Context, name string) error {
	if name != "ci" {
		return ErrTokenNotFound
	}
	return nil
}

var roleCases = []struct {
	name, method, path, body string
	// status for a viewer's, an operator's, an admin's and an
	// application's (ofrep) token
	viewer, operator, admin, ofrep int
}{
	{"read a rollout", "GET", "/v1/rollouts/web", "", 200, 200, 200, 403},
	{"read the history", "GET", "/v1/rollouts/web/events", "", 200, 200, 200, 403},
	{"steer a rollout", "POST", "/v1/rollouts/web/commands", `{"kind":"pause","actor":"mallory"}`, 403, 200, 200, 403},
	{"list tokens", "GET", "/v1/tokens", "", 403, 403, 200, 403},
	{"make a token", "POST", "/v1/tokens", `{"name":"ci","role":"ofrep"}`, 403, 403, 201, 403},
	{"revoke a token", "DELETE", "/v1/tokens/ci", "", 403, 403, 204, 403},
	{"rotate the cookie keys", "POST", "/v1/keys/rotate", "", 403, 403, 200, 403},
}

// Each route answers a token by its role: viewers read, operators also
// steer, admins also manage tokens; a refusal says what role is needed,
// and the actor of a command is the token's name whatever the client
// says.
func TestRolesDecideWhatATokenMayDo(t *testing.T) {
	tokens := tokenTable{"v": {Name: "dash", Role: RoleViewer}, "o": {Name: "deployer", Role: RoleOperator}, "a": {Name: AdminName, Role: RoleAdmin},
		"f": {Name: "checkout-app", Role: RoleOFREP}}
	for _, tc := range roleCases {
		for token, want := range map[string]int{"v": tc.viewer, "o": tc.operator, "a": tc.admin, "f": tc.ofrep} {
			// A backend of its own for each request: a pause applies once.
			f := &keeperBackend{fakeBackend: newFake()}
			srv := httptest.NewServer(NewHandler(f, tokens, nil, nil))
			code, body, _ := callWith(t, srv, tc.method, tc.path, tc.body, "Bearer "+token)
			srv.Close()
			if code != want {
				t.Errorf("%s with %s's token: %d %s, want %d", tc.name, tokens[token].Role, code, body, want)
			}
			if code == http.StatusForbidden && !strings.Contains(errorOf(t, body), " needs ") {
				t.Errorf("%s: refusal %q does not say which role is needed", tc.name, body)
			}
			if len(f.submitted) > 0 && f.submitted[0].Actor != tokens[token].Name {
				t.Errorf("%s: actor %q, want the token's name %q", tc.name, f.submitted[0].Actor, tokens[token].Name)
			}
		}
	}
	srv := httptest.NewServer(NewHandler(newFake(), tokens, nil, nil))
	t.Cleanup(srv.Close)
	if code, _, _ := callWith(t, srv, "GET", "/v1/rollouts", "", "Bearer forged"); code != http.StatusUnauthorized {
		t.Errorf("a forged token: %d, want 401", code)
	}
	code, body, _ := callWith(t, srv, "GET", "/v1/whoami", "", "Bearer o")
	var id Identity
	if code != 200 || json.Unmarshal(body, &id) != nil || id != tokens["o"] {
		t.Errorf("whoami: %d %s", code, body)
	}
	// An application's token does not open the dashboard either.
	if code, body, _ := callWith(t, srv, "POST", "/ui/login", `{"token":"f"}`, ""); code != http.StatusForbidden || !strings.Contains(errorOf(t, body), "may not use the dashboard") {
		t.Errorf("dashboard login with an ofrep token: %d %s, want 403", code, body)
	}
}

// A token request is refused, with why, for a name that is no DNS label
// or is the admin's, and for an unknown role; nothing is made.
func TestTokenRequestsAreChecked(t *testing.T) {
	f := &keeperBackend{fakeBackend: newFake()}
	srv := httptest.NewServer(NewHandler(f, SingleToken(testToken), nil, nil))
	t.Cleanup(srv.Close)
	for body, want := range map[string]string{
		`{"name":"Bad_Name","role":"viewer"}`: "lowercase",
		`{"name":"admin","role":"viewer"}`:    "daemon's own token",
		`{"name":"ci","role":"root"}`:         "want one of viewer, operator, admin, ofrep",
		`{"name":"ci","role":"viewer","x":1}`: "unknown field",
	} {
		code, out, _ := call(t, srv, "POST", "/v1/tokens", body)
		if code != http.StatusBadRequest || !strings.Contains(errorOf(t, out), want) {
			t.Errorf("%s: %d %s, want 400 with %q", body, code, out, want)
		}
	}
	if code, _, _ := call(t, srv, "DELETE", "/v1/tokens/nobody", ""); code != http.StatusNotFound {
		t.Errorf("revoking an unknown token: %d, want 404", code)
	}
	if len(f.made) != 0 {
		t.Errorf("made %v", f.made)
	}
}
