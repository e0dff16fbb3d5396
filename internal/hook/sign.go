package hook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/pipit-dev/pipit/api/v1alpha1"
)

// Headers of a signed HTTP hook request.
const (
	// TimestampHeader carries the Unix time, in seconds, the request was
	// signed at.
	TimestampHeader = "X-Pipit-Timestamp"
	// SignatureHeader carries "sha256=" and the hex HMAC-SHA256, keyed with
	// the shared secret, of the timestamp, a ".", and the body.
	SignatureHeader = "X-Pipit-Signature"
)

// maxSecret bounds how much of a secret file is read: a secret is a line,
// and a wrong path (a log file) should not be slurped whole.
const maxSecret = 64 << 10

// signaturePrefix names the algorithm in SignatureHeader.
const signaturePrefix = "sha256="

// sign returns the SignatureHeader value for a body sent at timestamp.
func sign(secret []byte, timestamp string, body []byte) string {
	return signaturePrefix + hex.EncodeToString(mac(secret, timestamp, body))
}

func mac(secret []byte, timestamp string, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	io.WriteString(m, timestamp)
	io.WriteString(m, ".")
	m.Write(body)
	return m.Sum(nil)
}

// loadSecret reads the hook's shared secret, nil when it has none. Errors
// name where the secret was looked for, never what was found.
func loadSecret(s v1alpha1.WebhookSpec) ([]byte, error) {
	switch {
	case s.SecretEnv != "":
		v := strings.TrimSpace(os.Getenv(s.SecretEnv))
		if v == "" {
			return nil, fmt.Errorf("secret: environment variable %s is not set or empty", s.SecretEnv)
		}
		return []byte(v), nil
	case s.SecretFile != "":
		f, err := os.Open(s.SecretFile)
		if err != nil {
			return nil, fmt.Errorf("secret: %w", err)
		}
		defer f.Close()
		b, err := io.ReadAll(io.LimitReader(f, maxSecret+1))
		if err != nil {
			return nil, fmt.Errorf("secret: reading %s: %w", s.SecretFile, err)
		}
		if len(b) > maxSecret {
			return nil, fmt.Errorf("secret: %s is larger than %d bytes", s.SecretFile, maxSecret)
		}
		b = []byte(strings.TrimSpace(string(b)))
		if len(b) == 0 {
			return nil, errors.New("secret: " + s.SecretFile + " is empty")
		}
		return b, nil
	}
	return nil, nil
}
