package proxy

import (
	"net/http"
)

// mayRetry is the one retry rule of both paths (Config.Retries): a
// request whose attempt failed with err is sent again, on its upstream's
// next replica, only when it could not connect (nothing of it was sent),
// only when its method is idempotent and its body can be sent again
// (replayable), and at most retries times; retried counts the retries
// made so far.
func mayRetry[S ~string | ~[]byte](retries, retried int, method S, replayable bool, err error) bool {
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

// retryTransport is the net/http path's transport: it sends a request
// again as mayRetry allows. A request with a body is not retried here,
// since the transport has closed the body by then.
type retryTransport struct {
	base    http.RoundTripper
	retries int
	st      *upstreamState
}

func (rt retryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	res, err := rt.base.RoundTrip(req)
	replayable := req.Body == nil || req.Body == http.NoBody
	var first uint32
	for retried := 0; err != nil && mayRetry(rt.retries, retried, req.Method, replayable, err); retried++ {
		// The next replica, when there are several; the same otherwise.
		ep := rt.st.pick(&first, retried)
		retry := req.Clone(req.Context())
		retry.URL.Scheme, retry.URL.Host, retry.Host = ep.url.Scheme, ep.url.Host, ep.url.Host
		res, err = rt.base.RoundTrip(retry)
	}
	return res, err
}
