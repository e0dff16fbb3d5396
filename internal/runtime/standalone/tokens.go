package standalone

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/pipit-dev/pipit/internal/controlapi"
	"github.com/pipit-dev/pipit/internal/store"
)

// authenticator knows the daemon's own token, the admin's, and the named
// tokens its store keeps.
type authenticator struct {
	admin controlapi.SingleToken
	db    *store.Store
}

// Authenticate implements controlapi.Authenticator.
func (a authenticator) Authenticate(ctx context.Context, token string) (controlapi.Identity, bool, error) {
	if id, ok, _ := a.admin.Authenticate(ctx, token); ok {
		return id, true, nil
	}
	return named(ctx, a.db, token)
}

// named authenticates one of the store's named tokens.
func named(ctx context.Context, db *store.Store, token string) (controlapi.Identity, bool, error) {
	t, ok, err := db.TokenBySecret(ctx, token)
	if err != nil || !ok {
		return controlapi.Identity{}, false, err
	}
	return controlapi.Identity{Name: t.Name, Role: controlapi.Role(t.Role)}, true, nil
}

// ofrepName is the identity of the OFREP listener's own token.
const ofrepName = "ofrep"

// ofrepAuthenticator knows the OFREP listener's own token
// (store.OFREPTokenFile) and the named tokens of the ofrep role: no
// other, so that a token that steers rollouts is never handed to an
// application.
type ofrepAuthenticator struct {
	own controlapi.SingleToken
	db  *store.Store
}

// Authenticate implements controlapi.Authenticator.
func (a ofrepAuthenticator) Authenticate(ctx context.Context, token string) (controlapi.Identity, bool, error) {
	if _, ok, _ := a.own.Authenticate(ctx, token); ok {
		return controlapi.Identity{Name: ofrepName, Role: controlapi.RoleOFREP}, true, nil
	}
	id, ok, err := named(ctx, a.db, token)
	if err != nil || !ok || id.Role != controlapi.RoleOFREP {
		return controlapi.Identity{}, false, err
	}
	return id, true, nil
}

// secretBytes is a named token's entropy, as the admin token's.
const secretBytes = 32

// CreateToken implements controlapi.TokenKeeper: a new random secret,
// kept hashed, for a name not taken yet.
func (d *Daemon) CreateToken(ctx context.Context, name string, role controlapi.Role) (controlapi.NewToken, error) {
	b := make([]byte, secretBytes)
	if _, err := rand.Read(b); err != nil {
		return controlapi.NewToken{}, fmt.Errorf("make token: %w", err)
	}
	secret := hex.EncodeToString(b)
	t := store.NamedToken{Name: name, Role: string(role), Created: d.clock.Now().UTC()}
	err := d.db.AddToken(ctx, t, secret)
	if errors.Is(err, store.ErrTokenExists) {
		return controlapi.NewToken{}, &controlapi.RefusedError{Reason: fmt.Sprintf("a token named %q exists; revoke it first", name)}
	}
	if err != nil {
		return controlapi.NewToken{}, err
	}
	d.log.Info("token created", "name", name, "role", role)
	return controlapi.NewToken{TokenInfo: tokenInfo(t), Token: secret}, nil
}

// Tokens implements controlapi.TokenKeeper.
func (d *Daemon) Tokens(ctx context.Context) ([]controlapi.TokenInfo, error) {
	list, err := d.db.Tokens(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]controlapi.TokenInfo, len(list))
	for i, t := range list {
		out[i] = tokenInfo(t)
	}
	return out, nil
}

// RevokeToken implements controlapi.TokenKeeper: the token stops working
// at once.
func (d *Daemon) RevokeToken(ctx context.Context, name string) error {
	err := d.db.RevokeToken(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("token %q: %w", name, controlapi.ErrTokenNotFound)
	}
	if err == nil {
		d.log.Info("token revoked", "name", name)
	}
	return err
}

func tokenInfo(t store.NamedToken) controlapi.TokenInfo {
	return controlapi.TokenInfo{Name: t.Name, Role: controlapi.Role(t.Role), Created: t.Created}
}
