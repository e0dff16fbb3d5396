package upstream

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/valyala/fasthttp"
)

// Send sends req to one of the group's endpoints and reads the head of
// the final answer into resp (1xx interim answers are dropped), trying
// again as MayRetry allows with retries, and on a fresh connection when a
// kept-alive one turns out closed by the upstream. The request goes with
// the client's target byte for byte, under the endpoint's base path when
// it has one, and the endpoint's host.
func (st *Group) Send(req *fasthttp.Request, resp *fasthttp.Response, retries int) (Answer, error) {
	// A streamed body cannot be sent twice; see settleBody.
	streamed := req.IsBodyStream()
	// The client's target is kept when it can be sent as it is, the
	// common case; otherwise each attempt builds the endpoint's.
	var target []byte
	if uri := req.Header.RequestURI(); st.rewrite || (len(uri) > 0 && uri[0] != '/' && uri[0] != '*') {
		target = bytes.Clone(uri)
	}
	// fasthttp would write the target again from its parsed and
	// normalised form, and the Host from it: the upstream gets the
	// client's target byte for byte instead, and the endpoint's host.
	req.UseHostHeader = true
	if target == nil {
		req.SetRequestURIBytes(req.Header.RequestURI())
	}
	var first uint32
	for attempt, stale := 0, 0; ; attempt++ {
		ep := st.Pick(&first, attempt-stale)
		req.Header.SetHost(ep.host)
		if target != nil {
			req.SetRequestURIBytes(ep.targetFor(target))
		}
		c, err := ep.roundTrip(req, resp)
		if err == nil {
			return Answer{ep: ep, c: c}, nil
		}
		var se *errStale
		if errors.As(err, &se) && stale < maxStaleRetries && !streamed && (se.nothingWritten || isIdempotent(req.Header.Method())) {
			// The upstream had closed this kept-alive connection, and
			// likely its other idle ones: start afresh on a new one.
			ep.pool.closeIdle()
			stale++
			continue
		}
		if !MayRetry(retries, attempt-stale, req.Header.Method(), !streamed, err) {
			return Answer{}, err
		}
	}
}

// Answer is an answer whose head Send read: the connection it came on,
// from which its body is read, and to which that connection goes back.
type Answer struct {
	ep *Endpoint
	c  *conn
}

// Body reads the answer's body, and after a chunked one its trailers.
func (a Answer) Body() *bufio.Reader { return a.c.br }

// Release gives the connection back once the body was read to exactly
// its end, for another request; with reuse false it is closed instead.
func (a Answer) Release(reuse bool) {
	if !reuse {
		a.c.Close()
		return
	}
	a.ep.pool.put(a.c)
}

// Close closes the connection, as when the body could not be read.
func (a Answer) Close() { a.c.Close() }

// Unbounded lifts the read deadline, for a body that is not bounded in
// time (an event stream, a long download).
func (a Answer) Unbounded() { _ = a.c.SetReadDeadline(time.Time{}) }

// targetFor is the request target sent to ep for the client's target: in
// origin form, under the endpoint URL's path and with its query first, as
// httputil's ProxyRequest.SetURL does.
func (ep *Endpoint) targetFor(client []byte) []byte {
	path, query, _ := bytes.Cut(client, []byte("?"))
	if len(path) == 0 {
		path = []byte("/")
	}
	base := ep.url.EscapedPath()
	out := make([]byte, 0, len(base)+len(path)+len(ep.url.RawQuery)+len(query)+2)
	switch {
	case base == "" || base == "/":
		out = append(out, path...)
	case strings.HasSuffix(base, "/") && path[0] == '/':
		out = append(append(out, base...), path[1:]...)
	case !strings.HasSuffix(base, "/") && path[0] != '/':
		out = append(append(append(out, base...), '/'), path...)
	default:
		out = append(append(out, base...), path...)
	}
	switch {
	case ep.url.RawQuery != "" && len(query) > 0:
		out = append(append(append(append(out, '?'), ep.url.RawQuery...), '&'), query...)
	case ep.url.RawQuery != "":
		out = append(append(out, '?'), ep.url.RawQuery...)
	case len(query) > 0:
		out = append(append(out, '?'), query...)
	}
	return out
}

// maxStaleRetries bounds the retries of requests that met a kept-alive
// connection the upstream had closed.
const maxStaleRetries = 2

// errStale is a failure on a reused connection before any byte of the
// answer: the upstream had closed it while it was idle.
type errStale struct {
	err error
	// nothingWritten: the request could not even be sent, so the
	// upstream cannot have seen it.
	nothingWritten bool
}

func (e *errStale) Error() string {
	return "kept-alive connection closed by the upstream: " + e.err.Error()
}
func (e *errStale) Unwrap() error { return e.err }

// roundTrip sends req on a connection to ep and reads the head of the
// final answer (1xx interim answers are dropped) into resp.
func (ep *Endpoint) roundTrip(req *fasthttp.Request, resp *fasthttp.Response) (*conn, error) {
	timeout := ep.pool.cfg.HeaderTimeout
	c, err := ep.pool.get()
	if err != nil {
		return nil, err
	}
	// The answer's head must come within timeout. A request body larger
	// than the socket buffers could block the write as well.
	deadline := time.Now().Add(timeout)
	if req.IsBodyStream() || len(req.Body()) > upstreamBufferSize {
		_ = c.SetDeadline(deadline)
	} else {
		_ = c.SetReadDeadline(deadline)
	}
	err = req.Write(c.bw)
	if err == nil {
		err = c.bw.Flush()
	}
	if err != nil {
		c.Close()
		if ep.pool.cfg.ClientFault != nil && ep.pool.cfg.ClientFault(err) {
			return nil, err
		}
		if c.reused {
			return nil, &errStale{err: err, nothingWritten: true}
		}
		return nil, err
	}
	for {
		if err := resp.Header.Read(c.br); err != nil {
			c.Close()
			if c.reused && errors.Is(err, io.EOF) {
				return nil, &errStale{err: err}
			}
			if errors.Is(err, fasthttp.ErrTimeout) {
				return nil, fmt.Errorf("no answer from %s within %s: %w", ep.host, timeout, errTimeout)
			}
			return nil, err
		}
		if code := resp.Header.StatusCode(); code >= 200 || code == http.StatusSwitchingProtocols {
			break
		}
	}
	if resp.Header.StatusCode() == http.StatusSwitchingProtocols {
		// Only upgrade requests may be switched, and those go to net/http.
		c.Close()
		return nil, errors.New("the upstream switched protocols on a request that did not ask to")
	}
	return c, nil
}

// errTimeout is the timeout error of a round trip: a net.Error whose
// Timeout is true.
var errTimeout = timeoutError{}

type timeoutError struct{}

func (timeoutError) Error() string   { return "timeout" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }
