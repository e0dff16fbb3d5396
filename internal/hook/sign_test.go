package hook

import (
	"crypto/hmac"
	"encoding/hex"
	"strings"
	"testing"
)

// Verify is a receiver's check: it reports whether header, the
// SignatureHeader of a request, signs timestamp (its TimestampHeader) and
// body with secret. It compares in
// constant time. It does not judge the timestamp: to refuse replayed
// requests a receiver should also check that the timestamp is recent, say
// within five minutes of its clock.
func Verify(secret []byte, timestamp string, body []byte, header string) bool {
	hexSig, ok := strings.CutPrefix(header, signaturePrefix)
	if !ok {
		return false
	}
	got, err := hex.DecodeString(hexSig)
	if err != nil {
		return false
	}
	return hmac.Equal(got, mac(secret, timestamp, body))
}

func TestVerify(t *testing.T) {
	secret := []byte("shared")
	body := []byte(`{"name":"web"}`)
	good := sign(secret, "1700000000", body)
	if !strings.HasPrefix(good, "sha256=") || len(good) != len("sha256=")+64 {
		t.Fatalf("signature %q is not sha256= and 64 hex digits", good)
	}
	tests := []struct {
		name      string
		secret    string
		timestamp string
		body      string
		header    string
		want      bool
	}{
		{"genuine", "shared", "1700000000", `{"name":"web"}`, good, true},
		{"upper-case hex", "shared", "1700000000", `{"name":"web"}`, "sha256=" + strings.ToUpper(strings.TrimPrefix(good, "sha256=")), true},
		{"tampered body", "shared", "1700000000", `{"name":"wep"}`, good, false},
		{"replayed with a new timestamp", "shared", "1700000300", `{"name":"web"}`, good, false},
		{"wrong secret", "other", "1700000000", `{"name":"web"}`, good, false},
		{"no algorithm", "shared", "1700000000", `{"name":"web"}`, strings.TrimPrefix(good, "sha256="), false},
		{"other algorithm", "shared", "1700000000", `{"name":"web"}`, "sha1=" + strings.TrimPrefix(good, "sha256="), false},
		{"not hex", "shared", "1700000000", `{"name":"web"}`, "sha256=zz", false},
		{"truncated", "shared", "1700000000", `{"name":"web"}`, good[:len(good)-2], false},
		{"empty", "shared", "1700000000", `{"name":"web"}`, "", false},
	}
	for _, tt := range tests {
		if got := Verify([]byte(tt.secret), tt.timestamp, []byte(tt.body), tt.header); got != tt.want {
			t.Errorf("%s: Verify = %v, want %v", tt.name, got, tt.want)
		}
	}
}
