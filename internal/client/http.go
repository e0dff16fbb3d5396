// Package client holds what the CLI talks to: implementations of
// controlapi.Backend that reach a pipit daemon. It makes no decisions.
package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/controlapi"
	"github.com/pipit-dev/pipit/internal/rollout"
)

// Limits of an HTTP client. A command waits until the engine has acted on
// it, so it gets more time than a read.
const (
	readTimeout    = 10 * time.Second
	commandTimeout = 30 * time.Second
	// getAttempts bounds the tries of a GET that could not connect.
	getAttempts = 3
	// firstBackoff is the wait before the second try; it doubles after.
	firstBackoff = 100 * time.Millisecond
	// maxResponse bounds what is read of an answer.
	maxResponse = 8 << 20
)

// ErrTokenRejected is returned (wrapped) when the daemon refuses the token.
var ErrTokenRejected = errors.New("token rejected")

// ErrForbidden is matched by the answer to a request the token's role
// does not allow; the message names the role needed.
var ErrForbidden = errors.New("not allowed for the token's role")

// ErrBadRequest is matched by the answer to a request the daemon found
// malformed; the message says why.
var ErrBadRequest = errors.New("bad request")

// HTTP is a controlapi.Backend that calls the control API of a daemon.
type HTTP struct {
	// Clock times the pauses between the tries of a GET; nil is the wall
	// clock.
	Clock rollout.Clock

	base  string
	token string
	hc    *http.Client
}

var (
	_ controlapi.Backend      = (*HTTP)(nil)
	_ controlapi.KeyRotator   = (*HTTP)(nil)
	_ controlapi.SampleReader = (*HTTP)(nil)
	_ controlapi.TokenKeeper  = (*HTTP)(nil)
)

// NewHTTP returns a client of the control API at baseURL, such as
// http://127.0.0.1:7070, authenticating with token.
func NewHTTP(baseURL, token string) *HTTP {
	return &HTTP{
		base:  strings.TrimRight(baseURL, "/"),
		token: token,
		hc:    &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()},
	}
}

// TrustCA makes the client trust the certificate authorities of a PEM
// file, instead of the system's, for a daemon serving TLS with a
// certificate of its own.
func (c *HTTP) TrustCA(pemFile string) error {
	b, err := os.ReadFile(pemFile)
	if err != nil {
		return fmt.Errorf("CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return fmt.Errorf("CA file %s holds no PEM certificate", pemFile)
	}
	c.hc.Transport.(*http.Transport).TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return nil
}

// FromStateDir returns a client of the daemon whose state directory is
// dir, from the address and token the daemon wrote there.
func FromStateDir(dir string) (*HTTP, error) {
	addr, err := ReadAddress(dir)
	if err != nil {
		return nil, err
	}
	token, err := ReadToken(filepath.Join(dir, controlapi.TokenFile))
	if err != nil {
		return nil, err
	}
	base, err := BaseURL(addr)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, controlapi.AddressFile), err)
	}
	return NewHTTP(base, token), nil
}

// ReadAddress returns the control API address the daemon wrote in dir.
func ReadAddress(dir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, controlapi.AddressFile))
	if errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("no pipit daemon found in %s (start one with `pipit up`)", dir)
	}
	if err != nil {
		return "", fmt.Errorf("reading the daemon's address: %w", err)
	}
	addr := strings.TrimSpace(string(b))
	if addr == "" {
		return "", fmt.Errorf("%s is empty; is the daemon still starting?", filepath.Join(dir, controlapi.AddressFile))
	}
	return addr, nil
}

// ReadToken reads a bearer token file, refusing one that others than its
// owner could read or change: the token lets its holder steer rollouts.
func ReadToken(path string) (string, error) {
	fi, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("token file %s does not exist", path)
	}
	if err != nil {
		return "", fmt.Errorf("token file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("token file %s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&^0o600 != 0 {
		return "", fmt.Errorf("token file %s has mode %04o, wider than 0600; fix it with: chmod 600 %s", path, perm, path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("token file: %w", err)
	}
	token := strings.TrimSpace(string(b))
	if token == "" {
		return "", fmt.Errorf("token file %s is empty", path)
	}
	return token, nil
}

// BaseURL turns an address as given on the command line or in the state
// directory, HOST:PORT or an http(s) URL, into a base URL.
func BaseURL(addr string) (string, error) {
	if strings.Contains(addr, "://") {
		u, err := url.Parse(addr)
		if err != nil {
			return "", fmt.Errorf("address %q: %w", addr, err)
		}
		if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return "", fmt.Errorf("address %q: want HOST:PORT or an http(s) URL", addr)
		}
		return strings.TrimRight(u.String(), "/"), nil
	}
	if _, port, err := net.SplitHostPort(addr); err != nil || port == "" {
		return "", fmt.Errorf("address %q: want HOST:PORT or an http(s) URL", addr)
	}
	return "http://" + addr, nil
}

// Rollouts lists every rollout.
func (c *HTTP) Rollouts(ctx context.Context) ([]controlapi.RolloutView, error) {
	var list controlapi.RolloutList
	err := c.get(ctx, "/v1/rollouts", &list)
	return list.Rollouts, err
}

// Rollout returns one rollout.
func (c *HTTP) Rollout(ctx context.Context, name string) (controlapi.RolloutView, error) {
	var v controlapi.RolloutView
	err := c.get(ctx, "/v1/rollouts/"+url.PathEscape(name), &v)
	return v, err
}

// Events returns the rollout's history, oldest first.
func (c *HTTP) Events(ctx context.Context, name string, limit int) ([]v1alpha1.Event, error) {
	path := "/v1/rollouts/" + url.PathEscape(name) + "/events"
	if limit > 0 {
		path += "?limit=" + strconv.Itoa(limit)
	}
	var list controlapi.EventList
	err := c.get(ctx, path, &list)
	return list.Events, err
}

// Samples returns the rollout's analysis results from the checks made at
// or after since (all of them when since is zero), of metric or of every
// metric when it is empty, oldest first.
func (c *HTTP) Samples(ctx context.Context, name, metric string, since time.Time) ([]controlapi.Sample, error) {
	q := url.Values{}
	if metric != "" {
		q.Set("metric", metric)
	}
	if !since.IsZero() {
		q.Set("since", since.UTC().Format(time.RFC3339Nano))
	}
	path := "/v1/rollouts/" + url.PathEscape(name) + "/samples"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var list controlapi.SampleList
	err := c.get(ctx, path, &list)
	return list.Samples, err
}

// Submit sends an operator command. It is never retried: the daemon may
// have applied it even when the answer was lost.
func (c *HTTP) Submit(ctx context.Context, name string, cmd rollout.Command) (controlapi.RolloutView, error) {
	body, err := json.Marshal(controlapi.CommandRequest{Kind: cmd.Kind, Canary: cmd.Canary, Weight: cmd.Weight, Actor: cmd.Actor, Reason: cmd.Reason})
	if err != nil {
		return controlapi.RolloutView{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, commandTimeout)
	defer cancel()
	var v controlapi.RolloutView
	err = c.do(ctx, http.MethodPost, "/v1/rollouts/"+url.PathEscape(name)+"/commands", body, &v)
	return v, err
}

// RotateCookieKeys asks the daemon for a new sticky-cookie key. Like a
// command it is never retried: the daemon may have rotated even when the
// answer was lost, and a second rotation would drop the key the cookies
// still in use were signed with.
func (c *HTTP) RotateCookieKeys(ctx context.Context) (controlapi.KeyRotation, error) {
	ctx, cancel := context.WithTimeout(ctx, commandTimeout)
	defer cancel()
	var rot controlapi.KeyRotation
	err := c.do(ctx, http.MethodPost, "/v1/keys/rotate", nil, &rot)
	if errors.Is(err, controlapi.ErrNotFound) {
		return rot, fmt.Errorf("the pipit daemon at %s has no key rotation (is it an older pipit?)", c.base)
	}
	return rot, err
}

// Reload asks the daemon to read its rollout files again. Like a command
// it is never retried. Files the daemon refused come back as an error
// matching controlapi.ErrInvalidConfig, with the daemon's message.
func (c *HTTP) Reload(ctx context.Context) (controlapi.ReloadResult, error) {
	ctx, cancel := context.WithTimeout(ctx, reloadTimeout)
	defer cancel()
	var res controlapi.ReloadResult
	err := c.do(ctx, http.MethodPost, "/v1/reload", nil, &res)
	if errors.Is(err, controlapi.ErrNotFound) {
		return res, fmt.Errorf("the pipit daemon at %s cannot reload (is it an older pipit?)", c.base)
	}
	return res, err
}

// CreateToken asks the daemon for a new named token of role; the answer
// holds its secret, shown this once. Never retried, as a command.
func (c *HTTP) CreateToken(ctx context.Context, name string, role controlapi.Role) (controlapi.NewToken, error) {
	body, err := json.Marshal(controlapi.TokenRequest{Name: name, Role: role})
	if err != nil {
		return controlapi.NewToken{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, commandTimeout)
	defer cancel()
	var tok controlapi.NewToken
	err = c.do(ctx, http.MethodPost, "/v1/tokens", body, &tok)
	return tok, err
}

// Tokens lists the daemon's named tokens.
func (c *HTTP) Tokens(ctx context.Context) ([]controlapi.TokenInfo, error) {
	var list controlapi.TokenList
	err := c.get(ctx, "/v1/tokens", &list)
	return list.Tokens, err
}

// RevokeToken makes the named token stop working.
func (c *HTTP) RevokeToken(ctx context.Context, name string) error {
	ctx, cancel := context.WithTimeout(ctx, commandTimeout)
	defer cancel()
	return c.do(ctx, http.MethodDelete, "/v1/tokens/"+url.PathEscape(name), nil, nil)
}

// reloadTimeout bounds a reload, which may wait for the processes of
// added rollouts to start and for removed ones to stop.
const reloadTimeout = 2 * time.Minute

// get fetches path into out, trying again with backoff when the
// connection failed: a GET changes nothing, so repeating it is safe.
func (c *HTTP) get(ctx context.Context, path string, out any) error {
	backoff := firstBackoff
	for attempt := 1; ; attempt++ {
		err := c.getOnce(ctx, path, out)
		if err == nil || attempt == getAttempts || !connectionFailed(err) || ctx.Err() != nil {
			return err
		}
		if rollout.Sleep(ctx, rollout.ClockOrSystem(c.Clock), backoff) != nil {
			return err
		}
		backoff *= 2
	}
}

func (c *HTTP) getOnce(ctx context.Context, path string, out any) error {
	ctx, cancel := context.WithTimeout(ctx, readTimeout)
	defer cancel()
	return c.do(ctx, http.MethodGet, path, nil, out)
}

// do sends one request and decodes a 2xx answer into out, or turns the
// answer into the error it stands for.
func (c *HTTP) do(ctx context.Context, method, path string, body []byte, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("control API request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if method != http.MethodGet {
		// With a key, Go's transport sends the request again on a new
		// connection when a kept-alive one turns out closed with no
		// answer: a daemon that handed over, or shut down, closes its
		// idle connections, and a command may be written to one just as
		// it goes. A server that answered is never asked twice, nor is a
		// request over a connection that was not reused.
		req.Header.Set("Idempotency-Key", rand.Text())
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("%s %s: %w", method, c.base+path, ctx.Err())
		}
		return &unreachableError{base: c.base, err: err}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return fmt.Errorf("%s %s: reading the answer: %w", method, c.base+path, err)
	}
	if resp.StatusCode/100 == 2 {
		if out == nil {
			return nil
		}
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("%s %s: decoding the answer: %w", method, c.base+path, err)
		}
		return nil
	}
	return statusErr(resp.StatusCode, data, c.base)
}

// statusErr maps an error answer to the error the Backend contract names.
func statusErr(code int, body []byte, base string) error {
	var e controlapi.ErrorResponse
	msg := strings.TrimSpace(string(body))
	if json.Unmarshal(body, &e) == nil && e.Error != "" {
		msg = e.Error
	}
	if msg == "" {
		msg = http.StatusText(code)
	}
	switch code {
	case http.StatusNotFound:
		return &wrapped{msg: msg, err: controlapi.ErrNotFound}
	case http.StatusConflict:
		return &controlapi.RefusedError{Reason: msg}
	case http.StatusUnprocessableEntity:
		return &wrapped{msg: msg, err: controlapi.ErrInvalidConfig}
	case http.StatusForbidden:
		return &wrapped{msg: msg, err: ErrForbidden}
	case http.StatusBadRequest:
		return &wrapped{msg: msg, err: ErrBadRequest}
	case http.StatusUnauthorized:
		return &wrapped{
			msg: fmt.Sprintf("the pipit daemon at %s rejected the token (%s); check --token-file or the state directory", base, msg),
			err: ErrTokenRejected,
		}
	}
	return fmt.Errorf("control API answered %d: %s", code, msg)
}

// wrapped is an error with its own message that matches a sentinel.
type wrapped struct {
	msg string
	err error
}

func (e *wrapped) Error() string { return e.msg }
func (e *wrapped) Unwrap() error { return e.err }

// unreachableError says that no connection could be made or kept: the
// request failed before any answer, for a reason other than its context.
type unreachableError struct {
	base string
	err  error
}

func (e *unreachableError) Error() string {
	return fmt.Sprintf("cannot reach the pipit daemon at %s (is `pipit up` running?): %v", e.base, e.err)
}
func (e *unreachableError) Unwrap() error { return e.err }

// connectionFailed reports whether err is a failure to connect, or a
// connection lost before an answer, as opposed to a timeout or an answer
// that was an error.
func connectionFailed(err error) bool {
	var unreachable *unreachableError
	return errors.As(err, &unreachable)
}
