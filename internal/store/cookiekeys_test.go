package store

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestCookieKeysCreatedPrivateAndStable(t *testing.T) {
	// A permissive umask must not widen the file.
	old := syscall.Umask(0)
	defer syscall.Umask(old)

	dir := filepath.Join(t.TempDir(), "state")
	k, err := LoadOrCreateCookieKeys(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(k.Current) != 32 || k.Previous != nil || !k.RotatedAt.IsZero() {
		t.Errorf("first keys: %d-byte current, previous %v, rotated %v; want 32 bytes and nothing else", len(k.Current), k.Previous, k.RotatedAt)
	}
	info, err := os.Stat(filepath.Join(dir, CookieKeysFile))
	if err != nil {
		t.Fatal(err)
	}
	if perm := info.Mode().Perm(); perm != 0o600 {
		t.Errorf("key file mode = %04o, want 0600", perm)
	}
	again, err := LoadOrCreateCookieKeys(dir)
	if err != nil || !bytes.Equal(again.Current, k.Current) {
		t.Errorf("second load = %v; want the same key", err)
	}
	other, err := LoadOrCreateCookieKeys(t.TempDir())
	if err != nil || bytes.Equal(other.Current, k.Current) {
		t.Errorf("a second directory got the same key (%v)", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("state directory holds %d entries, want only the key file", len(entries))
	}
}

func TestCookieKeysRotate(t *testing.T) {
	dir := t.TempDir()
	if _, err := RotateCookieKeys(dir, time.Now()); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("rotating without keys: %v, want fs.ErrNotExist", err)
	}
	first, err := LoadOrCreateCookieKeys(dir)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.UTC)
	k, err := RotateCookieKeys(dir, at)
	if err != nil {
		t.Fatal(err)
	}
	if len(k.Current) != 32 || bytes.Equal(k.Current, first.Current) || !bytes.Equal(k.Previous, first.Current) || !k.RotatedAt.Equal(at) {
		t.Fatalf("after a rotation: previous is the old key %v, a new current %v, rotated %v",
			bytes.Equal(k.Previous, first.Current), !bytes.Equal(k.Current, first.Current), k.RotatedAt)
	}
	read, err := ReadCookieKeys(dir)
	if err != nil || !bytes.Equal(read.Current, k.Current) || !bytes.Equal(read.Previous, k.Previous) || !read.RotatedAt.Equal(at) {
		t.Fatalf("read back after the rotation: %+v, %v", read, err)
	}
	info, err := os.Stat(filepath.Join(dir, CookieKeysFile))
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("key file after the rotation: %v, %v", info.Mode(), err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("state directory holds %d entries after the rotation, want only the key file", len(entries))
	}
	second, err := RotateCookieKeys(dir, at.Add(time.Minute))
	if err != nil || !bytes.Equal(second.Previous, k.Current) {
		t.Fatalf("second rotation: %v", err)
	}
	if bytes.Equal(second.Current, first.Current) || bytes.Equal(second.Previous, first.Current) {
		t.Error("the first key is still kept after two rotations")
	}
}

func TestCookieKeysWideModeRefused(t *testing.T) {
	dir := t.TempDir()
	if _, err := LoadOrCreateCookieKeys(dir); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, CookieKeysFile)
	before, _ := os.ReadFile(path)
	if err := os.Chmod(path, 0o640); err != nil {
		t.Fatal(err)
	}
	for name, load := range map[string]func() (CookieKeys, error){
		"LoadOrCreateCookieKeys": func() (CookieKeys, error) { return LoadOrCreateCookieKeys(dir) },
		"ReadCookieKeys":         func() (CookieKeys, error) { return ReadCookieKeys(dir) },
		"RotateCookieKeys":       func() (CookieKeys, error) { return RotateCookieKeys(dir, time.Now()) },
	} {
		k, err := load()
		if err == nil || !strings.Contains(err.Error(), "chmod 600") {
			t.Errorf("%s of a 0640 key file: %v; want an error saying chmod 600", name, err)
		}
		if k.Current != nil {
			t.Errorf("%s returned a key despite the wide mode", name)
		}
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Error("refusing changed the key file")
	}
}

func TestCookieKeysMalformedRefused(t *testing.T) {
	key := strings.Repeat("A", 43) + "=" // 32 bytes in base64
	for name, content := range map[string]string{
		"not JSON":                "hunter2\n",
		"empty":                   "",
		"a short key":             `{"current":"AAAA"}`,
		"no current key":          `{"previous":"` + key + `","rotatedAt":"2026-03-01T12:00:00Z"}`,
		"a previous key, no time": `{"current":"` + key + `","previous":"` + key + `"}`,
		"a time, no previous key": `{"current":"` + key + `","rotatedAt":"2026-03-01T12:00:00Z"}`,
		"a short previous key":    `{"current":"` + key + `","previous":"AAAA","rotatedAt":"2026-03-01T12:00:00Z"}`,
		"an unknown field":        `{"current":"` + key + `","next":"` + key + `"}`,
	} {
		dir := t.TempDir()
		path := filepath.Join(dir, CookieKeysFile)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadOrCreateCookieKeys(dir); err == nil || !strings.Contains(err.Error(), "does not hold pipit's cookie keys") {
			t.Errorf("%s: %v; want it refused", name, err)
		}
		if _, err := RotateCookieKeys(dir, time.Now()); err == nil {
			t.Errorf("%s: rotated", name)
		}
		if after, _ := os.ReadFile(path); string(after) != content {
			t.Errorf("%s: the file was changed", name)
		}
	}
	// A well-formed file is read as it is.
	dir := t.TempDir()
	good := `{"current":"` + key + `","previous":"` + key + `","rotatedAt":"2026-03-01T12:00:00Z"}`
	if err := os.WriteFile(filepath.Join(dir, CookieKeysFile), []byte(good), 0o600); err != nil {
		t.Fatal(err)
	}
	if k, err := ReadCookieKeys(dir); err != nil || len(k.Previous) != 32 || k.RotatedAt.IsZero() {
		t.Errorf("a well-formed file: %+v, %v", k, err)
	}
	// Not a regular file.
	dir = t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, CookieKeysFile), 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadCookieKeys(dir); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("a directory in place of the key file: %v", err)
	}
}
