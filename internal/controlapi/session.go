package controlapi

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"sync"
	"time"
)

// SessionCookie names the dashboard's session cookie.
const SessionCookie = "pipit_session"

// SessionTTL is how long a dashboard session lasts after its login; then
// the person logs in again.
const SessionTTL = 8 * time.Hour

// MaxSessions bounds the sessions kept in memory, so that a flood of
// logins cannot exhaust it; expired ones are dropped first.
const MaxSessions = 10000

// CSRFHeader carries a session's CSRF token on every request that changes
// something; a cookie alone is never enough to act.
const CSRFHeader = "X-CSRF-Token"

// errTooManySessions refuses a login while MaxSessions are alive.
var errTooManySessions = errors.New("too many dashboard sessions; try again later")

// session is one logged-in dashboard: the token it logged in with, kept in
// memory only so that every request authenticates it again (a revoked
// token ends its sessions at once), and its CSRF token.
type session struct {
	token   string
	csrf    string
	expires time.Time
}

// sessions are the dashboard's sessions, in memory: a restart logs
// everyone out. They are keyed by the hash of the cookie's value, so the
// map's lookups reveal nothing of valid ids through timing.
type sessions struct {
	mu   sync.Mutex
	byID map[[sha256.Size]byte]session
	now  func() time.Time
}

func newSessions() *sessions {
	return &sessions{byID: map[[sha256.Size]byte]session{}, now: time.Now}
}

// create starts a session for token and returns its id (the cookie's
// value) and CSRF token, each 256 random bits.
func (s *sessions) create(token string) (id, csrf string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if len(s.byID) >= MaxSessions {
		for k, v := range s.byID {
			if !now.Before(v.expires) {
				delete(s.byID, k)
			}
		}
	}
	if len(s.byID) >= MaxSessions {
		return "", "", errTooManySessions
	}
	id, csrf = randomString(), randomString()
	s.byID[sha256.Sum256([]byte(id))] = session{token: token, csrf: csrf, expires: now.Add(SessionTTL)}
	return id, csrf, nil
}

// lookup returns the live session of id; an expired one is dropped.
func (s *sessions) lookup(id string) (session, bool) {
	key := sha256.Sum256([]byte(id))
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.byID[key]
	if ok && !s.now().Before(sess.expires) {
		delete(s.byID, key)
		return session{}, false
	}
	return sess, ok
}

// drop ends the session of id, if any.
func (s *sessions) drop(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.byID, sha256.Sum256([]byte(id)))
}

// csrfMatches compares a request's CSRF token with the session's in
// constant time.
func (sess session) csrfMatches(given string) bool {
	a, b := sha256.Sum256([]byte(given)), sha256.Sum256([]byte(sess.csrf))
	return given != "" && subtle.ConstantTimeCompare(a[:], b[:]) == 1
}

// randomString is 256 bits from crypto/rand, URL-safe.
func randomString() string {
	var b [32]byte
	// crypto/rand.Read never fails (it crashes the program instead).
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}
