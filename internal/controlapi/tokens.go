package controlapi

import (
	"fmt"
	"net/http"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// check refuses a token name that is not a DNS label or is the admin's,
// and a role that is none of Roles nor RoleOFREP.
func (t TokenRequest) check() error {
	switch {
	case len(validation.IsDNS1123Label(t.Name)) > 0:
		return fmt.Errorf("name %q: use at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit", t.Name)
	case t.Name == AdminName:
		return fmt.Errorf("name %q is the daemon's own token", t.Name)
	case !t.Role.Valid():
		return fmt.Errorf("role %q: want one of %s", t.Role, strings.Join(roleNames(), ", "))
	}
	return nil
}

func roleNames() []string {
	out := make([]string, 0, len(Roles)+1)
	for _, r := range append(Roles, RoleOFREP) {
		out = append(out, string(r))
	}
	return out
}

// whoami answers who the token authenticated as.
func (s server) whoami(w http.ResponseWriter, r *http.Request) {
	id, _ := IdentityOf(r.Context())
	s.writeJSON(w, http.StatusOK, id)
}

func (s server) listTokens(w http.ResponseWriter, r *http.Request) {
	list, err := s.tokens.Tokens(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if list == nil {
		list = []TokenInfo{}
	}
	s.writeJSON(w, http.StatusOK, TokenList{Tokens: list})
}

func (s server) createToken(w http.ResponseWriter, r *http.Request) {
	var req TokenRequest
	if status, err := decodeStrict(w, r, &req); err != nil {
		s.writeError(w, status, err.Error())
		return
	}
	if err := req.check(); err != nil {
		s.writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	tok, err := s.tokens.CreateToken(r.Context(), req.Name, req.Role)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.writeJSON(w, http.StatusCreated, tok)
}

func (s server) revokeToken(w http.ResponseWriter, r *http.Request) {
	if err := s.tokens.RevokeToken(r.Context(), r.PathValue("name")); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
