package metric

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pipit-dev/pipit/api/v1alpha1"
)

func newWeb(t *testing.T, spec v1alpha1.WebProvider) *Web {
	t.Helper()
	w, err := NewWeb(spec)
	if err != nil {
		t.Fatalf("NewWeb: %v", err)
	}
	return w
}

var webQuery = Query{Rollout: "shop", Namespace: "prod", Version: "v2", Role: "canary", Interval: time.Minute, Vars: map[string]string{"team": "a b"}}

func TestWebGet(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || r.URL.Path != "/rollouts/prod/shop/v2" ||
			r.URL.Query().Get("window") != "60s" || r.URL.Query().Get("team") != "a b" ||
			r.Header.Get("Accept") != "application/json" {
			http.Error(w, "unexpected request "+r.URL.String(), http.StatusBadRequest)
			return
		}
		fmt.Fprint(w, `{"data": {"series": [{"rate": "0.125"}]}}`)
	}))
	defer srv.Close()
	p := newWeb(t, v1alpha1.WebProvider{
		URL:      srv.URL + `/rollouts/{{ .Namespace }}/{{ .Rollout }}/{{ .Version }}?window={{ .Interval }}&team={{ .Vars.team | urlquery }}`,
		JSONPath: "{$.data.series[0].rate}",
	})
	got, err := p.Measure(context.Background(), webQuery)
	if err != nil || got != 0.125 {
		t.Fatalf("got %v, %v; want 0.125", got, err)
	}
}

func TestWebPostWithAuth(t *testing.T) {
	token := writeFile(t, "token", "web-token\n")
	var body, contentType, auth, apiKey string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		body, contentType = string(b), r.Header.Get("Content-Type")
		auth, apiKey = r.Header.Get("Authorization"), r.Header.Get("X-Api-Key")
		fmt.Fprint(w, `{"healthy": true}`)
	}))
	defer srv.Close()
	p := newWeb(t, v1alpha1.WebProvider{
		URL:      srv.URL + "/query",
		Method:   "post",
		Body:     `{"rollout": "{{ .Rollout }}", "version": "{{ .Version }}", "role": "{{ .Role }}", "window": "{{ .Interval }}"}`,
		JSONPath: ".healthy",
		Auth:     &v1alpha1.HTTPAuth{BearerTokenFile: token},
		Headers:  map[string]string{"X-Api-Key": "k1"},
	})
	got, err := p.Measure(context.Background(), webQuery)
	if err != nil || got != 1 {
		t.Fatalf("got %v, %v; want 1 (true)", got, err)
	}
	if want := `{"rollout": "shop", "version": "v2", "role": "canary", "window": "60s"}`; body != want {
		t.Errorf("body %s, want %s", body, want)
	}
	if contentType != "application/json" || auth != "Bearer web-token" || apiKey != "k1" {
		t.Errorf("Content-Type %q, Authorization %q, X-Api-Key %q", contentType, auth, apiKey)
	}
}

func TestWebAnswers(t *testing.T) {
	cases := []struct {
		name   string
		status int
		answer string
		want   float64
		noData bool
		err    string
	}{
		{name: "number", status: 200, answer: `{"v": 3.5}`, want: 3.5},
		{name: "null", status: 200, answer: `{"v": null}`, noData: true},
		{name: "missing", status: 200, answer: `{"w": 1}`, noData: true},
		{name: "not JSON", status: 200, answer: `<html>`, err: "not JSON"},
		{name: "server error", status: 500, answer: `{"error": "boom"}`, err: "status 500"},
		{name: "not found", status: 404, answer: `{"v": 1}`, err: "status 404"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(c.status)
				fmt.Fprint(w, c.answer)
			}))
			defer srv.Close()
			got, err := newWeb(t, v1alpha1.WebProvider{URL: srv.URL, JSONPath: "$.v"}).Measure(context.Background(), webQuery)
			checkOutcome(t, got, err, c.want, c.noData, c.err)
		})
	}
}

func TestWebResponseLimit(t *testing.T) {
	// answer is a JSON document of exactly n bytes.
	answer := func(n int) string {
		const frame = `{"v": 2, "pad": ""}`
		return `{"v": 2, "pad": "` + strings.Repeat("x", n-len(frame)) + `"}`
	}
	size := MaxWebResponse
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, answer(size))
	}))
	defer srv.Close()
	p := newWeb(t, v1alpha1.WebProvider{URL: srv.URL, JSONPath: "$.v"})
	if got, err := p.Measure(context.Background(), webQuery); err != nil || got != 2 {
		t.Fatalf("%d bytes: got %v, %v; want 2", size, got, err)
	}
	size = MaxWebResponse + 1
	if _, err := p.Measure(context.Background(), webQuery); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("%d bytes: got %v, want the answer refused", size, err)
	}
}

func TestWebTimeout(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	}))
	defer srv.Close()
	p := newWeb(t, v1alpha1.WebProvider{URL: srv.URL, JSONPath: "$.v", Timeout: &metav1.Duration{Duration: 200 * time.Millisecond}})
	if _, err := p.Measure(context.Background(), webQuery); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want a deadline error", err)
	}
}

func TestWebErrorsHideQueryString(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "apikey=hunter2 is wrong", http.StatusForbidden)
	}))
	defer srv.Close()
	q := webQuery
	q.Vars = map[string]string{"key": "hunter2"}
	_, err := newWeb(t, v1alpha1.WebProvider{URL: srv.URL + "/m?apikey={{ .Vars.key }}", JSONPath: "$.v"}).Measure(context.Background(), q)
	if err == nil || !strings.Contains(err.Error(), srv.URL+"/m") || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("got %v; want an error naming the endpoint without its key", err)
	}
	// Refused connections too: the transport's error repeats the URL.
	srv.Close()
	_, err = newWeb(t, v1alpha1.WebProvider{URL: srv.URL + "/m?apikey={{ .Vars.key }}", JSONPath: "$.v"}).Measure(context.Background(), q)
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("got %v; want an error without the key", err)
	}
}

func TestWebRenderErrors(t *testing.T) {
	cases := map[string]v1alpha1.WebProvider{
		"missing variable":   {URL: "http://127.0.0.1/{{ .Vars.nope }}", JSONPath: "$.v"},
		"not an http URL":    {URL: "{{ .Rollout }}.example/x", JSONPath: "$.v"},
		"body missing a var": {URL: "http://127.0.0.1/", Method: "POST", Body: `{"x": "{{ .Vars.nope }}"}`, JSONPath: "$.v"},
	}
	for name, spec := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := newWeb(t, spec).Measure(context.Background(), webQuery)
			if err == nil || errors.Is(err, ErrNoData) {
				t.Fatalf("got %v, want an error", err)
			}
		})
	}
}

func TestNewWebErrors(t *testing.T) {
	cases := []struct {
		name string
		spec v1alpha1.WebProvider
		want string
	}{
		{"method", v1alpha1.WebProvider{URL: "http://127.0.0.1/", Method: "PUT", JSONPath: "$.v"}, "GET or POST"},
		{"body with GET", v1alpha1.WebProvider{URL: "http://127.0.0.1/", Body: "{}", JSONPath: "$.v"}, "only with method POST"},
		{"no url", v1alpha1.WebProvider{JSONPath: "$.v"}, "url is empty"},
		{"bad url template", v1alpha1.WebProvider{URL: "http://127.0.0.1/{{ .Version", JSONPath: "$.v"}, "url template"},
		{"bad body template", v1alpha1.WebProvider{URL: "http://127.0.0.1/", Method: "POST", Body: "{{ end }}", JSONPath: "$.v"}, "body template"},
		{"no jsonPath", v1alpha1.WebProvider{URL: "http://127.0.0.1/"}, "jsonPath is empty"},
		{"bad jsonPath", v1alpha1.WebProvider{URL: "http://127.0.0.1/", JSONPath: "$.items[*]"}, "single index"},
		{"bad auth", v1alpha1.WebProvider{URL: "http://127.0.0.1/", JSONPath: "$.v", Auth: &v1alpha1.HTTPAuth{}}, "auth"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := NewWeb(c.spec)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an error containing %q", err, c.want)
			}
		})
	}
}
