package proxy

import (
	"net/http"
)

// retryTransport is the net/http path's transport: it sends a request
// again when it could not connect, the same rule as the fast path's
// (Config.Retries). A request with a body is not retried here, since the
// transport has closed the body by then.
type retryTransport struct {
	base    http.RoundTripper
	retries int
	st      *upstreamState
}

func (rt retryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	res, err := rt.base.RoundTrip(req)
	if err == nil || rt.retries == 0 || !isIdempotent([]byte(req.Method)) || (req.Body != nil && req.Body != http.NoBody) {
		return res, err
	}
	var first uint32
	for attempt := 1; attempt <= rt.retries && isDialError(err); attempt++ {
		// The next replica, when there are several; the same otherwise.
		ep := rt.st.pick(&first, attempt-1)
		retry := req.Clone(req.Context())
		retry.URL.Scheme, retry.URL.Host, retry.Host = ep.url.Scheme, ep.url.Host, ep.url.Host
		res, err = rt.base.RoundTrip(retry)
	}
	return res, err
}
