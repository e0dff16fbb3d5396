package store

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// tokenFile holds the control API's bearer token in the state directory.
const tokenFile = "token"

// tokenBytes is the token's entropy; it is written as twice as many hex
// digits.
const tokenBytes = 32

// LoadOrCreateToken returns the control API token kept in dir/token,
// creating dir (0700) and a new random token (file mode 0600) when there is
// none. It refuses a token file that others may read.
func LoadOrCreateToken(dir string) (string, error) {
	tok, err := ReadToken(dir)
	if !errors.Is(err, fs.ErrNotExist) {
		return tok, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("create state directory: %w", err)
	}
	b := make([]byte, tokenBytes)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("make token: %w", err)
	}
	tok = hex.EncodeToString(b)
	switch err := publishToken(dir, tok); {
	case errors.Is(err, fs.ErrExist):
		// Another process made one first; theirs is the token.
		return ReadToken(dir)
	case err != nil:
		return "", err
	}
	return tok, nil
}

// publishToken writes tok to a private temporary file and links it into
// place. The link fails rather than replaces when a token already exists,
// and a crash never leaves a token file that is empty or half written.
func publishToken(dir, tok string) error {
	// CreateTemp opens with O_EXCL and mode 0600 from the start.
	f, err := os.CreateTemp(dir, ".token-*")
	if err != nil {
		return fmt.Errorf("write token: %w", err)
	}
	defer os.Remove(f.Name())
	_, err = f.WriteString(tok + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write token: %w", err)
	}
	if err := os.Link(f.Name(), filepath.Join(dir, tokenFile)); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return err
		}
		return fmt.Errorf("write token: %w", err)
	}
	return syncDir(dir)
}

// syncDir makes a new directory entry durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

// ReadToken returns the control API token kept in dir/token. The error
// wraps fs.ErrNotExist when there is none. It refuses a token file that
// others may read, and says how to fix it.
func ReadToken(dir string) (string, error) {
	path := filepath.Join(dir, tokenFile)
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("read token: %w", err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("read token: %w", err)
	}
	if !info.Mode().IsRegular() {
		return "", fmt.Errorf("token file %s is not a regular file", path)
	}
	if perm := info.Mode().Perm(); perm&0o077 != 0 {
		return "", fmt.Errorf("token file %s has mode %04o, readable by others; run: chmod 600 %s", path, perm, path)
	}
	b, err := io.ReadAll(io.LimitReader(f, 4*tokenBytes))
	if err != nil {
		return "", fmt.Errorf("read token: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if raw, err := hex.DecodeString(tok); err != nil || len(raw) != tokenBytes {
		return "", fmt.Errorf("token file %s does not hold a pipit token; remove it to make a new one", path)
	}
	return tok, nil
}
