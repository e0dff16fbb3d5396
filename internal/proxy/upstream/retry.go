package upstream

import (
	"net/http"
)

// MayRetry is the one retry rule of both forwarding paths: a request
// whose attempt failed with err is sent again, on its version's next
// replica, only when it could not connect (nothing of it was sent), only
// when its method is idempotent and its body can be sent again
// (replayable), and at most retries times; retried counts the retries
// made so far. Group.Send and RetryTransport follow it.
func MayRetry[S ~string | ~[]byte](retries, retried int, method S, replayable bool, err error) bool {
	return retried < retries && replayable && isIdempotent(method) && isDialError(err)
}

// isIdempotent reports whether a request with this method may be sent
// twice: GET, HEAD, OPTIONS, PUT and DELETE (RFC 9110, 9.2.2).
func isIdempotent[S ~string | ~[]byte](method S) bool {
	switch string(method) {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodPut, http.MethodDelete:
		return true
	}
	return false
}

// RetryTransport is the transport of the net/http path: it sends a
// request with Base, and again as MayRetry allows, to the next endpoint
// of Group. A request with a body is not retried, since Base has closed
// the body by then.
type RetryTransport struct {
	Base    http.RoundTripper
	Retries int
	Group   *Group
}

// RoundTrip implements http.RoundTripper.
func (rt RetryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	res, err := rt.Base.RoundTrip(req)
	replayable := req.Body == nil || req.Body == http.NoBody
	var first uint32
	for retried := 0; err != nil && MayRetry(rt.Retries, retried, req.Method, replayable, err); retried++ {
		// The next replica, when there are several; the same otherwise.
		ep := rt.Group.Pick(&first, retried)
		retry := req.Clone(req.Context())
		retry.URL.Scheme, retry.URL.Host, retry.Host = ep.url.Scheme, ep.url.Host, ep.url.Host
		res, err = rt.Base.RoundTrip(retry)
	}
	return res, err
}
