package proxy

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/textproto"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/traffic"
)

// DefaultMirrorMaxBody bounds the body of a copied request when the spec
// does not say.
const DefaultMirrorMaxBody = 64 << 10

// Bounds of mirroring. A copy never holds the real request up: when
// mirrorInFlight copies are in flight the next one is dropped, and a
// copy's whole exchange with the canary is cut off at mirrorTimeout.
const (
	mirrorInFlight = 64
	mirrorTimeout  = 10 * time.Second
)

// MirrorHeader is set to "1" on every copy, so the canary can tell copies
// from real requests (and, say, skip side effects).
const MirrorHeader = "X-Pipit-Mirror"

// mirror copies a share of stable's requests to the canary. Copies go out
// on their own connections, so a slow canary cannot take connections from
// real requests, and their answers are counted apart from the canary's
// real traffic (MirrorStats), so that analysis judges only what users got.
type mirror struct {
	maxBody   int64
	methods   map[string]bool // the methods copied; nil copies every one
	slots     chan struct{}   // one token per copy in flight
	tasks     *background     // the Proxy's: copies run there
	transport *http.Transport
	dropped   atomic.Uint64
	skipped   atomic.Uint64
}

func compileMirror(m *v1alpha1.Mirror, tasks *background) (*mirror, error) {
	if m == nil {
		return nil, nil
	}
	maxBody := m.MaxBodyBytes
	switch {
	case maxBody == 0:
		maxBody = DefaultMirrorMaxBody
	case maxBody < 0 || maxBody > v1alpha1.MaxMirrorBodyBytes:
		return nil, fmt.Errorf("mirror: maxBodyBytes must be from 0 to %d, not %d", v1alpha1.MaxMirrorBodyBytes, maxBody)
	}
	dialer := &net.Dialer{Timeout: DefaultDialTimeout, KeepAlive: 30 * time.Second}
	var methods map[string]bool
	if len(m.Methods) > 0 {
		methods = make(map[string]bool, len(m.Methods))
		for _, method := range m.Methods {
			methods[method] = true
		}
	}
	return &mirror{
		maxBody: maxBody,
		methods: methods,
		slots:   make(chan struct{}, mirrorInFlight),
		tasks:   tasks,
		transport: &http.Transport{
			Proxy:               nil,
			DialContext:         dialer.DialContext,
			ForceAttemptHTTP2:   true,
			MaxIdleConnsPerHost: mirrorInFlight,
			IdleConnTimeout:     30 * time.Second,
			TLSHandshakeTimeout: 10 * time.Second,
			DisableCompression:  true,
		},
	}, nil
}

// send copies r to the canary in the background. It first reads r's body
// up to the bound (that much the upstream would read anyway) and gives r
// a body that replays it; a larger body is left to stream and the copy is
// skipped. Upgrades (WebSocket) are never copied.
func (m *mirror) send(r *http.Request, to *backend) {
	if !m.acquire(r) {
		return
	}
	body, ok := m.buffer(r)
	if !ok {
		m.skip()
		return
	}
	m.start(r, body, to)
}

// sendBuffered is send for a request whose whole body is in memory
// already, as on the fast path; body is copied, so the caller may reuse
// it, and r is not kept.
func (m *mirror) sendBuffered(r *http.Request, body []byte, to *backend) {
	if !m.acquire(r) {
		return
	}
	if int64(len(body)) > m.maxBody {
		m.skip()
		return
	}
	m.start(r, bytes.Clone(body), to)
}

// skipStreamed counts the copy of r not made because its body is
// streamed (larger than a buffered body: see settleBody).
func (m *mirror) skipStreamed(r *http.Request) {
	if m.acquire(r) {
		m.skip()
	}
}

// acquire takes a slot for a copy of r, or counts the copy as dropped.
// Requests of methods not listed are not copied, nor counted: the spec
// left them out on purpose.
func (m *mirror) acquire(r *http.Request) bool {
	if r.Header.Get("Upgrade") != "" || (m.methods != nil && !m.methods[r.Method]) {
		return false
	}
	select {
	case m.slots <- struct{}{}:
		return true
	default:
		m.dropped.Add(1)
		return false
	}
}

// skip gives back the slot of a copy not made because of its body.
func (m *mirror) skip() {
	<-m.slots
	m.skipped.Add(1)
}

// start builds the copy now, while r is still valid, and sends it in the
// background, giving the slot back when the exchange is over. A Proxy
// being closed sends no more copies and cuts those in flight short.
func (m *mirror) start(r *http.Request, body []byte, to *backend) {
	out := copyRequest(r, to.up.URL, body)
	started := m.tasks.Go(func(ctx context.Context) {
		defer func() { <-m.slots }()
		// An I/O deadline, as the transport's own timeouts: the real clock.
		ctx, cancel := context.WithTimeout(ctx, mirrorTimeout)
		defer cancel()
		m.exchange(out.WithContext(ctx), to.mirrored)
	})
	if !started {
		<-m.slots
	}
}

// buffer reads r's body when it is at most maxBody bytes and replaces it
// with a reader of the same bytes. Otherwise r keeps every byte of its
// body, read or not, and ok is false.
func (m *mirror) buffer(r *http.Request) (body []byte, ok bool) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, true
	}
	if r.ContentLength > m.maxBody {
		return nil, false
	}
	orig := r.Body
	body, err := io.ReadAll(io.LimitReader(orig, m.maxBody+1))
	switch {
	case err != nil:
		// The real request must meet the same failure.
		r.Body = replay{io.MultiReader(bytes.NewReader(body), errReader{err}), orig}
		return nil, false
	case int64(len(body)) > m.maxBody:
		r.Body = replay{io.MultiReader(bytes.NewReader(body), orig), orig}
		return nil, false
	}
	r.Body = replay{bytes.NewReader(body), orig}
	return body, true
}

// replay reads bytes already taken from a body, then possibly the rest,
// and closes the original body.
type replay struct {
	io.Reader
	io.Closer
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// copyRequest builds the copy of r for the canary at target, as the
// reverse proxy would send r itself (same URL rewriting and X-Forwarded
// headers, hop-by-hop headers removed), marked with MirrorHeader.
func copyRequest(r *http.Request, target *url.URL, body []byte) *http.Request {
	out := r.Clone(context.Background())
	out.RequestURI = ""
	out.Close = false
	out.TransferEncoding = nil
	out.Trailer = nil
	out.ContentLength = int64(len(body))
	out.Body = http.NoBody
	if len(body) > 0 {
		out.Body = io.NopCloser(bytes.NewReader(body))
	}
	out.GetBody = nil
	removeHopHeaders(out.Header)
	pr := httputil.ProxyRequest{In: r, Out: out}
	pr.SetURL(target)
	setForwardedHeaders(out.Header, r)
	out.Header.Set(MirrorHeader, "1")
	return out
}

// removeHopHeaders drops the headers that belong to one connection: those
// RFC 9110 names and those the Connection header lists.
func removeHopHeaders(h http.Header) {
	for _, v := range h["Connection"] {
		for name := range strings.SplitSeq(v, ",") {
			if name = textproto.TrimString(name); name != "" {
				h.Del(name)
			}
		}
	}
	for _, name := range []string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
		"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"} {
		delete(h, name)
	}
}

// exchange sends one copy, reads the answer to its end and counts it. No
// answer, or one cut short, is a transport error, as for real requests.
func (m *mirror) exchange(out *http.Request, c *traffic.Counters) {
	start := time.Now()
	res, err := m.transport.RoundTrip(out)
	class := traffic.ClassError
	if err == nil {
		_, err = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if err == nil {
			class = traffic.ClassOf(res.StatusCode)
		}
	}
	c.Record(class, time.Since(start))
}

// MirrorStats are the measurements of the copies of stable's requests
// sent to the canary. They are kept apart from Stats, which measure only
// what users got.
type MirrorStats struct {
	// Canary counts the canary's answers to the copies, cumulative since
	// the canary's version was set; zero with no canary or no mirroring.
	Canary traffic.VersionStats
	// Dropped counts copies not sent because the in-flight bound was
	// reached; cumulative since the Proxy started.
	Dropped uint64
	// Skipped counts copies not sent because the body was over the bound
	// or could not be read; cumulative since the Proxy started.
	Skipped uint64
}

// MirrorStats returns the cumulative measurements of mirroring now.
func (p *Proxy) MirrorStats() MirrorStats {
	var s MirrorStats
	m := p.mirror
	if m == nil {
		return s
	}
	t := p.table.Load()
	s.Dropped, s.Skipped = m.dropped.Load(), m.skipped.Load()
	if t.canary != nil && t.canary.mirrored != nil {
		s.Canary = t.canary.mirrored.Snapshot()
	}
	return s
}

// Since returns the measurements between prev and s, prev first, as
// Stats.Since does.
func (s MirrorStats) Since(prev MirrorStats) MirrorStats {
	return MirrorStats{
		Canary:  s.Canary.Since(prev.Canary),
		Dropped: s.Dropped - prev.Dropped,
		Skipped: s.Skipped - prev.Skipped,
	}
}
