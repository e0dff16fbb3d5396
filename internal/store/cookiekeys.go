package store

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// CookieKeysFile holds, in the state directory, the keys the proxies sign
// sticky-session cookies with (mode 0600).
const CookieKeysFile = "cookie-keys"

// cookieKeyBytes is the size of a cookie key: that of the HMAC-SHA256 it
// keys.
const cookieKeyBytes = 32

// CookieKeys are the secret keys the proxies sign sticky-session cookies
// with, as kept in CookieKeysFile. They persist so that a restarted daemon
// honours the cookies it issued before.
type CookieKeys struct {
	// Current signs new cookies.
	Current []byte `json:"current"`
	// Previous is the key Current replaced, nil before the first
	// rotation. The proxies honour its cookies for one cookie TTL after
	// RotatedAt.
	Previous []byte `json:"previous,omitempty"`
	// RotatedAt is when Current replaced Previous; zero before the first
	// rotation.
	RotatedAt time.Time `json:"rotatedAt,omitzero"`
}

// LoadOrCreateCookieKeys returns the cookie keys kept in dir, creating dir
// (0700) and a first random key (file mode 0600) when there are none. It
// refuses a key file that others may read.
func LoadOrCreateCookieKeys(dir string) (CookieKeys, error) {
	k, err := ReadCookieKeys(dir)
	if !errors.Is(err, fs.ErrNotExist) {
		return k, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return CookieKeys{}, fmt.Errorf("create state directory: %w", err)
	}
	k = CookieKeys{Current: newCookieKey()}
	switch err := writeCookieKeys(dir, k, false); {
	case errors.Is(err, fs.ErrExist):
		// Another process made them first; theirs are the keys.
		return ReadCookieKeys(dir)
	case err != nil:
		return CookieKeys{}, err
	}
	return k, nil
}

// ReadCookieKeys returns the cookie keys kept in dir. The error wraps
// fs.ErrNotExist when there are none. It refuses a key file that others
// may read, and one that does not hold keys as pipit writes them.
func ReadCookieKeys(dir string) (CookieKeys, error) {
	b, err := readPrivate(dir, CookieKeysFile, "cookie key", 4<<10)
	if err != nil {
		return CookieKeys{}, err
	}
	var k CookieKeys
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&k); err != nil || !k.valid() {
		return CookieKeys{}, fmt.Errorf("cookie key file %s does not hold pipit's cookie keys; remove it to make a new key (the sticky cookies issued so far will be replaced)",
			filepath.Join(dir, CookieKeysFile))
	}
	return k, nil
}

// RotateCookieKeys makes a new current key, keeps the current one as the
// previous, rotated at now, and saves both in place of the old keys, in
// one step: a crash leaves the old keys or the new ones. The key before
// the previous one is dropped. There must be keys already (the daemon
// makes them at start).
func RotateCookieKeys(dir string, now time.Time) (CookieKeys, error) {
	old, err := ReadCookieKeys(dir)
	if err != nil {
		return CookieKeys{}, err
	}
	k := CookieKeys{Current: newCookieKey(), Previous: old.Current, RotatedAt: now}
	if err := writeCookieKeys(dir, k, true); err != nil {
		return CookieKeys{}, err
	}
	return k, nil
}

// valid reports whether k holds keys as pipit makes them: a previous key
// comes with the time of the rotation.
func (k CookieKeys) valid() bool {
	if len(k.Current) != cookieKeyBytes {
		return false
	}
	if k.Previous == nil {
		return k.RotatedAt.IsZero()
	}
	return len(k.Previous) == cookieKeyBytes && !k.RotatedAt.IsZero()
}

func writeCookieKeys(dir string, k CookieKeys, replace bool) error {
	b, err := json.Marshal(k)
	if err != nil {
		return fmt.Errorf("write cookie keys: %w", err)
	}
	return writePrivate(dir, CookieKeysFile, "cookie keys", append(b, '\n'), replace)
}

func newCookieKey() []byte {
	k := make([]byte, cookieKeyBytes)
	rand.Read(k) // never fails: it crashes the program instead
	return k
}
