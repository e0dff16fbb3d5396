package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// NamedToken is a control API token as the store keeps it: its name, its
// role and when it was made; never the secret.
type NamedToken struct {
	Name    string
	Role    string
	Created time.Time
}

// ErrTokenExists says a token of that name exists already.
var ErrTokenExists = errors.New("a token of that name exists")

// HashToken is what the store keeps of a secret: its SHA-256. Tokens are
// random and long, so a plain hash cannot be reversed by guessing.
func HashToken(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

// AddToken keeps a new token; ErrTokenExists when the name is taken.
func (s *Store) AddToken(ctx context.Context, t NamedToken, secret string) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO tokens (name, role, hash, created_at) VALUES (?, ?, ?, ?)`,
		t.Name, t.Role, HashToken(secret), formatTime(t.Created))
	if err != nil && strings.Contains(err.Error(), "UNIQUE constraint failed: tokens.name") {
		return fmt.Errorf("token %q: %w", t.Name, ErrTokenExists)
	}
	return err
}

// TokenBySecret returns the token whose secret this is; ok is false for
// none (a revoked or forged token).
func (s *Store) TokenBySecret(ctx context.Context, secret string) (t NamedToken, ok bool, err error) {
	var created string
	err = s.db.QueryRowContext(ctx, `SELECT name, role, created_at FROM tokens WHERE hash = ?`, HashToken(secret)).
		Scan(&t.Name, &t.Role, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return NamedToken{}, false, nil
	}
	if err != nil {
		return NamedToken{}, false, err
	}
	t.Created, err = parseTime(created)
	return t, err == nil, err
}

// Tokens lists the named tokens by name.
func (s *Store) Tokens(ctx context.Context) ([]NamedToken, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT name, role, created_at FROM tokens ORDER BY name`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []NamedToken
	for rows.Next() {
		var t NamedToken
		var created string
		if err := rows.Scan(&t.Name, &t.Role, &created); err != nil {
			return nil, err
		}
		if t.Created, err = parseTime(created); err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// RevokeToken forgets the named token; ErrNotFound when there is none.
func (s *Store) RevokeToken(ctx context.Context, name string) error {
	res, err := s.db.ExecContext(ctx, `DELETE FROM tokens WHERE name = ?`, name)
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err == nil && n == 0 {
		err = fmt.Errorf("token %q: %w", name, ErrNotFound)
	}
	return err
}
