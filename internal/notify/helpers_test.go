package notify

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pipit-dev/pipit/api/v1alpha1"
)

// secretPath stands for a webhook's token; it must never show in errors or
// logs.
const secretPath = "/services/T0001/B0002/s3cr3tT0ken"

// request is one request a capture server received.
type request struct {
	Path   string
	Header http.Header
	Body   []byte
}

// capture is a local endpoint that records requests and answers with
// respond (200 when nil).
type capture struct {
	*httptest.Server
	mu      sync.Mutex
	reqs    []request
	respond func(n int, w http.ResponseWriter, r *http.Request) // n counts from 1
}

func newCapture(t *testing.T, respond func(n int, w http.ResponseWriter, r *http.Request)) *capture {
	t.Helper()
	c := &capture{respond: respond}
	c.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		c.mu.Lock()
		c.reqs = append(c.reqs, request{Path: r.URL.Path, Header: r.Header.Clone(), Body: body})
		n := len(c.reqs)
		c.mu.Unlock()
		if c.respond != nil {
			c.respond(n, w, r)
		}
	}))
	t.Cleanup(c.Close)
	return c
}

// url is the endpoint's secret webhook URL.
func (c *capture) url() string { return c.URL + secretPath }

func (c *capture) requests() []request {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]request(nil), c.reqs...)
}

// decode unmarshals a captured body into a generic value.
func decode(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("body is not JSON: %v\n%s", err, b)
	}
	return v
}

// event builds an event as the engine emits it.
func event(typ, reason, msg string) v1alpha1.Event {
	return v1alpha1.Event{
		Time: metav1.NewMicroTime(time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)), Type: typ, Reason: reason,
		Message: msg, Phase: v1alpha1.PhaseProgressing, Step: 2, Weight: 10 * v1alpha1.PercentScale, Actor: "pipit",
	}
}

// rolledBack is the message of a typical rollback.
func rolledBack() Message {
	e := event(v1alpha1.EventWarning, "RolledBack", "RolledBack: all traffic on stable v1; canary v2: request-success-rate 91% < min 99%")
	e.Phase, e.Weight = v1alpha1.PhaseRolledBack, 0
	m := Message{Rollout: "checkout", Event: e, Severity: SeverityOf(e), Fields: map[string]string{
		FieldCanary: "v2", FieldStable: "v1", FieldMetric: "request-success-rate", FieldEvidence: "request-success-rate 91% < min 99%",
	}}
	m.Text = DefaultText(m)
	return m
}
