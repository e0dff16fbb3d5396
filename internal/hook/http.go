package hook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/rollout"
)

// maxDrain bounds how much of an answer is read past the message so that
// its connection can be reused; a longer answer closes the connection.
const maxDrain = 64 << 10

// client sends every HTTP hook. It keeps connections to receivers that are
// polled at every interval, and it does not follow redirects: a signed POST
// must reach the configured receiver or fail.
var client = &http.Client{
	Transport: http.DefaultTransport.(*http.Transport).Clone(),
	CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	},
}

// sender posts one payload to one receiver.
type sender struct {
	url    string
	host   string // for messages: the URL's path and query may hold a token
	body   []byte
	secret []byte
	clock  rollout.Clock // dates the signatures
}

func newSender(s v1alpha1.WebhookSpec, p Payload, clock rollout.Clock) (*sender, error) {
	secret, err := loadSecret(s)
	if err != nil {
		return nil, err
	}
	body, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("encoding payload: %w", err)
	}
	u, err := url.Parse(s.URL) // validation parsed it already
	if err != nil {
		return nil, err
	}
	return &sender{url: s.URL, host: u.Host, body: body, secret: secret, clock: clock}, nil
}

// post makes one attempt: a 2xx is a yes, a 4xx (or another status) a
// definitive no, and a transport error, timeout or 5xx no answer, worth
// another attempt.
func (s *sender) post(parent context.Context, timeout time.Duration) attempt {
	ctx, cancel := context.WithTimeout(parent, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(s.body))
	if err != nil {
		return attempt{err: fmt.Errorf("post to %s: %w", s.host, unwrapURL(err))}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "pipit-hook")
	if s.secret != nil {
		// Signed per attempt, so that a retry carries a fresh timestamp.
		ts := strconv.FormatInt(s.clock.Now().Unix(), 10)
		req.Header.Set(TimestampHeader, ts)
		req.Header.Set(SignatureHeader, sign(s.secret, ts, s.body))
	}

	resp, err := client.Do(req)
	if err != nil {
		if parent.Err() == nil && ctx.Err() != nil {
			err = fmt.Errorf("no answer within %s", timeout)
		}
		return attempt{err: fmt.Errorf("post to %s: %w", s.host, unwrapURL(err)), retry: true}
	}
	defer resp.Body.Close()
	text, _ := io.ReadAll(io.LimitReader(resp.Body, MaxMessage+1))
	io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrain))

	message := string(bytes.TrimSpace(text))
	if message == "" {
		message = resp.Status
	}
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return attempt{ok: true, message: message}
	case resp.StatusCode >= 500:
		return attempt{message: message, err: fmt.Errorf("%s answered %s", s.host, resp.Status), retry: true}
	default:
		return attempt{message: message}
	}
}

// unwrapURL drops the *url.Error wrapper, whose text repeats the whole URL.
func unwrapURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
