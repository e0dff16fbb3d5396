package store

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
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
	switch err := writePrivate(dir, tokenFile, "token", []byte(tok+"\n"), false); {
	case errors.Is(err, fs.ErrExist):
		// Another process made one first; theirs is the token.
		return ReadToken(dir)
	case err != nil:
		return "", err
	}
	return tok, nil
}

// ReadToken returns the control API token kept in dir/token. The error
// wraps fs.ErrNotExist when there is none. It refuses a token file that
// others may read, and says how to fix it.
func ReadToken(dir string) (string, error) {
	b, err := readPrivate(dir, tokenFile, "token", 4*tokenBytes)
	if err != nil {
		return "", err
	}
	tok := strings.TrimSpace(string(b))
	if raw, err := hex.DecodeString(tok); err != nil || len(raw) != tokenBytes {
		return "", fmt.Errorf("token file %s does not hold a pipit token; remove it to make a new one", filepath.Join(dir, tokenFile))
	}
	return tok, nil
}
