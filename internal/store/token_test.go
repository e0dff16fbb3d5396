package store

import (
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestTokenCreatedPrivateAndStable(t *testing.T) {
	// A permissive umask must not widen the file.
	old := syscall.Umask(0)
	defer syscall.Umask(old)

	dir := filepath.Join(t.TempDir(), "state")
	tok, err := LoadOrCreateToken(dir)
	if err != nil {
		t.Fatal(err)
	}
	if raw, err := hex.DecodeString(tok); err != nil || len(raw) != 32 {
		t.Errorf("token %q is not 32 bytes of hex", tok)
	}
	info, err := os.Stat(filepath.Join(dir, tokenFile))
	if err != nil {
		t.Fatal(err)
	}
	if perm := info.Mode().Perm(); perm != 0o600 {
		t.Errorf("token file mode = %04o, want 0600", perm)
	}
	again, err := LoadOrCreateToken(dir)
	if err != nil || again != tok {
		t.Errorf("second load = %q, %v; want the same token %q", again, err, tok)
	}
	read, err := ReadTokenFile(dir, tokenFile)
	if err != nil || read != tok {
		t.Errorf("ReadToken = %q, %v; want %q", read, err, tok)
	}
	other, err := LoadOrCreateToken(t.TempDir())
	if err != nil || other == tok {
		t.Errorf("a second directory got token %q, %v; want a different one", other, err)
	}
	// Only the token is left behind, no temporary file.
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("state directory holds %d entries, want only the token", len(entries))
	}
}

func TestTokenWideModeRefused(t *testing.T) {
	dir := t.TempDir()
	tok, err := LoadOrCreateToken(dir)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, tokenFile)
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	for name, load := range map[string]func(string) (string, error){
		"LoadOrCreateToken": LoadOrCreateToken, "ReadToken": func(dir string) (string, error) { return ReadTokenFile(dir, tokenFile) },
	} {
		got, err := load(dir)
		if err == nil || !strings.Contains(err.Error(), "chmod 600") {
			t.Errorf("%s of a 0644 token = %q, %v; want an error saying chmod 600", name, got, err)
		}
		if got != "" {
			t.Errorf("%s returned the token despite the wide mode", name)
		}
	}
	// Refusing did not replace the token.
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := ReadTokenFile(dir, tokenFile); err != nil || got != tok {
		t.Errorf("after chmod 600: %q, %v; want the original token", got, err)
	}
}

func TestReadTokenMissingOrMalformed(t *testing.T) {
	dir := t.TempDir()
	if _, err := ReadTokenFile(dir, tokenFile); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing token: err = %v, want fs.ErrNotExist", err)
	}
	if err := os.WriteFile(filepath.Join(dir, tokenFile), []byte("hunter2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateToken(dir); err == nil {
		t.Error("a malformed token file was accepted")
	}
}

// TestOFREPTokenIsItsOwn checks that the OFREP token is kept beside the
// control API's, private too, and is another secret.
func TestOFREPTokenIsItsOwn(t *testing.T) {
	dir := t.TempDir()
	api, err := LoadOrCreateToken(dir)
	if err != nil {
		t.Fatal(err)
	}
	ofrep, err := LoadOrCreateTokenFile(dir, OFREPTokenFile)
	if err != nil || ofrep == api {
		t.Fatalf("OFREP token %q, %v; want one of its own", ofrep, err)
	}
	if info, err := os.Stat(filepath.Join(dir, OFREPTokenFile)); err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("OFREP token file: %v %v", info, err)
	}
	if again, err := ReadTokenFile(dir, OFREPTokenFile); err != nil || again != ofrep {
		t.Errorf("read back %q, %v", again, err)
	}
}
