package store

import (
	"context"
	"errors"
	"testing"
	"time"
)

// Named tokens are kept by the hash of their secret: found by it, listed
// by name, refused twice under one name, and gone once revoked — across a
// reopen of the file.
func TestNamedTokens(t *testing.T) {
	ctx, dir := context.Background(), t.TempDir()
	s, err := Open(ctx, dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 12, 6, 9, 0, 0, 0, time.UTC)
	for name, secret := range map[string]string{"ci": "one", "dash": "two"} {
		if err := s.AddToken(ctx, NamedToken{Name: name, Role: "operator", Created: at}, secret); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.AddToken(ctx, NamedToken{Name: "ci", Role: "viewer", Created: at}, "three"); !errors.Is(err, ErrTokenExists) {
		t.Fatalf("second ci: %v, want ErrTokenExists", err)
	}
	s.Close()
	if s, err = Open(ctx, dir, Options{}); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if tok, ok, err := s.TokenBySecret(ctx, "one"); err != nil || !ok || tok.Name != "ci" || tok.Role != "operator" || !tok.Created.Equal(at) {
		t.Fatalf("TokenBySecret(one) = %+v, %v, %v", tok, ok, err)
	}
	if _, ok, err := s.TokenBySecret(ctx, "forged"); err != nil || ok {
		t.Fatalf("a forged secret: %v, %v", ok, err)
	}
	if list, err := s.Tokens(ctx); err != nil || len(list) != 2 || list[0].Name != "ci" || list[1].Name != "dash" {
		t.Fatalf("Tokens = %+v, %v", list, err)
	}
	if err := s.RevokeToken(ctx, "ci"); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := s.TokenBySecret(ctx, "one"); ok {
		t.Error("a revoked token still authenticates")
	}
	if err := s.RevokeToken(ctx, "ci"); !errors.Is(err, ErrNotFound) {
		t.Errorf("revoking twice: %v, want ErrNotFound", err)
	}
}
