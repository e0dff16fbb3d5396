package proxy

import (
	"bufio"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/pipit-dev/pipit/internal/traffic"
)

// recorder wraps the client's ResponseWriter to learn the status the
// client got and whether the upstream failed. Recorders are pooled so the
// accounting allocates nothing per request.
type recorder struct {
	http.ResponseWriter
	b           *backend
	p           *Proxy
	start       time.Time
	code        int   // final status written; 0 until then
	err         error // set when the upstream gave no usable answer
	completed   bool  // ReverseProxy returned normally
	accounted   bool  // counted already, when the protocol switched
	clientFault bool  // the request failed by the client's doing (body too large)
}

var recorders = sync.Pool{New: func() any { return new(recorder) }}

func newRecorder(w http.ResponseWriter, b *backend) *recorder {
	rec := recorders.Get().(*recorder)
	rec.ResponseWriter, rec.b = w, b
	return rec
}

func (w *recorder) release() {
	*w = recorder{}
	recorders.Put(w)
}

// WriteHeader notes the first final status; 1xx answers pass through.
func (w *recorder) WriteHeader(code int) {
	if w.code == 0 && code >= 200 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *recorder) Write(p []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(p)
}

// Hijack serves protocol switches (WebSocket): ReverseProxy writes the
// 101 on the hijacked connection itself, so it is noted and counted here.
func (w *recorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, rw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err == nil {
		// An upgraded connection (a WebSocket) may last for hours: it
		// counts as one request, timed to the switch, not to its end.
		w.code = http.StatusSwitchingProtocols
		w.p.account(w.b, traffic.Class1xx, time.Since(w.start), "")
		w.accounted = true
	}
	return conn, rw, err
}

// Unwrap lets http.ResponseController reach the client's writer, for
// flushing streamed responses.
func (w *recorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// bufferSize is the copy buffer of one response, as ReverseProxy's own.
const bufferSize = 32 << 10

// buffers pools ReverseProxy's copy buffers. It stores array pointers, so
// Put converts the slice back without allocating.
type buffers struct{}

var bufferPool = sync.Pool{New: func() any { return new([bufferSize]byte) }}

func (buffers) Get() []byte { return bufferPool.Get().(*[bufferSize]byte)[:] }

func (buffers) Put(b []byte) {
	if len(b) == bufferSize {
		bufferPool.Put((*[bufferSize]byte)(b))
	}
}
