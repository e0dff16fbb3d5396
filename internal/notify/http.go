package notify

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
	"strings"
	"time"
)

// endpoint is where a provider posts: the URL (a secret), extra headers and
// the client. Deadlines come from the caller's context.
type endpoint struct {
	url     string
	headers map[string]string
	client  *http.Client
}

// maxErrorBody bounds how much of a refusal's body goes into the error: a
// provider's short reason ("invalid_payload") helps, a whole page does not.
const maxErrorBody = 256

// postJSON sends v as JSON and returns a *StatusError unless the endpoint
// answers 2xx. Errors never contain the URL.
func (e endpoint) postJSON(ctx context.Context, v any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode payload: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.url, bytes.NewReader(body))
	if err != nil {
		return errors.New("build request: invalid URL")
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "pipit")
	for k, v := range e.headers {
		req.Header.Set(k, v)
	}
	resp, err := e.client.Do(req)
	if err != nil {
		// *url.Error quotes the URL, which holds the webhook's token.
		if ue, ok := errors.AsType[*url.Error](err); ok {
			err = ue.Err
		}
		return fmt.Errorf("post: %w", err)
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // let the connection be reused
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	after, at := parseRetryAfter(resp.Header.Get("Retry-After"))
	return &StatusError{
		Code:       resp.StatusCode,
		RetryAfter: after,
		RetryAt:    at,
		Body:       strings.Join(strings.Fields(string(snippet)), " "),
	}
}

// StatusError is an endpoint's refusal: a status other than 2xx.
type StatusError struct {
	// Code is the HTTP status.
	Code int
	// RetryAfter is how long the endpoint asked to wait (429, 503); zero
	// when it did not say.
	RetryAfter time.Duration
	// RetryAt is when the endpoint asked to be tried again, when it
	// answered with a date; the dispatcher reads it on its clock.
	RetryAt time.Time
	// Body is the start of the response body, on one line.
	Body string
}

func (e *StatusError) Error() string {
	if e.Body == "" {
		return fmt.Sprintf("endpoint answered %d", e.Code)
	}
	return fmt.Sprintf("endpoint answered %d: %s", e.Code, e.Body)
}

// retryable says whether another attempt may succeed after err, and how
// long, from now, the endpoint asked to wait first (zero: use the
// backoff). Transport errors and timeouts, 408, 429 and 5xx are worth
// retrying; other refusals (a revoked webhook, a bad payload) will not
// change.
func retryable(err error, now time.Time) (bool, time.Duration) {
	se, ok := errors.AsType[*StatusError](err)
	if !ok {
		return true, 0
	}
	switch {
	case se.Code == http.StatusTooManyRequests, se.Code == http.StatusRequestTimeout, se.Code >= 500:
		if se.RetryAt.After(now) {
			return true, se.RetryAt.Sub(now)
		}
		return true, se.RetryAfter
	}
	return false, 0
}

// parseRetryAfter reads a Retry-After header: seconds (Discord sends
// fractions) as after, or an HTTP date as at. Anything else is neither.
func parseRetryAfter(h string) (after time.Duration, at time.Time) {
	h = strings.TrimSpace(h)
	if h == "" {
		return 0, time.Time{}
	}
	if s, err := strconv.ParseFloat(h, 64); err == nil {
		if !(s > 0) { // also NaN
			return 0, time.Time{}
		}
		return time.Duration(min(s, 1e6) * float64(time.Second)), time.Time{} // the dispatcher caps it further
	}
	if t, err := http.ParseTime(h); err == nil {
		return 0, t
	}
	return 0, time.Time{}
}
