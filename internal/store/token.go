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

// OFREPTokenFile holds the read-only bearer token of the OFREP listener
// (pipit up --ofrep) in the state directory: applications evaluate flags
// and report events with it, and it commands nothing.
const OFREPTokenFile = "ofrep-token"

// tokenBytes is the token's entropy; it is written as twice as many hex
// digits.
const tokenBytes = 32

// LoadOrCreateToken returns the control API token kept in dir/token,
// creating dir (0700) and a new random token (file mode 0600) when there is
// none. It refuses a token file that others may read.
func LoadOrCreateToken(dir string) (string, error) {
	return LoadOrCreateTokenFile(dir, tokenFile)
}

// LoadOrCreateTokenFile is LoadOrCreateToken for the token kept in
// dir/name, such as OFREPTokenFile.
func LoadOrCreateTokenFile(dir, name string) (string, error) {
	tok, err := ReadTokenFile(dir, name)
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
	switch err := writePrivate(dir, name, "token", []byte(tok+"\n"), false); {
	case errors.Is(err, fs.ErrExist):
		// Another process made one first; theirs is the token.
		return ReadTokenFile(dir, name)
	case err != nil:
		return "", err
	}
	return tok, nil
}

// ReadTokenFile returns the token kept in dir/name, such as the control
// API's (LoadOrCreateToken) or OFREPTokenFile. The error wraps
// fs.ErrNotExist when there is none. It refuses a token file that others
// may read, and says how to fix it.
func ReadTokenFile(dir, name string) (string, error) {
	b, err := readPrivate(dir, name, "token", 4*tokenBytes)
	if err != nil {
		return "", err
	}
	tok := strings.TrimSpace(string(b))
	if raw, err := hex.DecodeString(tok); err != nil || len(raw) != tokenBytes {
		return "", fmt.Errorf("token file %s does not hold a pipit token; remove it to make a new one", filepath.Join(dir, name))
	}
	return tok, nil
}
