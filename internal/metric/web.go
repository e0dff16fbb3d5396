package metric

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"text/template"
	"time"

	"github.com/pipit-dev/pipit/api/v1alpha1"
)

// MaxWebResponse bounds the answer the web provider reads: a metric is one
// number, and a runaway endpoint must not fill the memory.
const MaxWebResponse = 1 << 20

// Web reads a metric from a JSON endpoint: GET or POST a templated URL
// (and body), then select one value with a JSONPath.
type Web struct {
	client  *http.Client
	method  string
	url     *template.Template
	body    *template.Template
	path    jsonPath
	timeout time.Duration
}

// NewWeb checks the provider's settings and parses its templates and
// JSONPath; it reads TLS files but sends nothing.
func NewWeb(spec v1alpha1.WebProvider) (*Web, error) {
	method := strings.ToUpper(spec.Method)
	switch method {
	case "":
		method = http.MethodGet
	case http.MethodGet, http.MethodPost:
	default:
		return nil, fmt.Errorf("web: method %q: use GET or POST", spec.Method)
	}
	if spec.URL == "" {
		return nil, errors.New("web: url is empty")
	}
	if spec.Body != "" && method != http.MethodPost {
		return nil, errors.New("web: a body is sent only with method POST")
	}
	w := &Web{method: method, timeout: durationOr(spec.Timeout, DefaultTimeout)}
	var err error
	if w.url, err = parseTemplate("url", spec.URL); err != nil {
		return nil, fmt.Errorf("web: %w", err)
	}
	if spec.Body != "" {
		if w.body, err = parseTemplate("body", spec.Body); err != nil {
			return nil, fmt.Errorf("web: %w", err)
		}
	}
	if w.path, err = parseJSONPath(spec.JSONPath); err != nil {
		return nil, fmt.Errorf("web: %w", err)
	}
	w.client, err = newHTTPClient(httpConfig{Auth: spec.Auth, Headers: spec.Headers, TLS: spec.TLS})
	if err != nil {
		return nil, fmt.Errorf("web: %w", err)
	}
	return w, nil
}

// Measure sends one request and reads the value at the JSONPath.
func (w *Web) Measure(ctx context.Context, q Query) (float64, error) {
	ctx, cancel := context.WithTimeout(ctx, w.timeout)
	defer cancel()
	req, err := w.request(ctx, q)
	if err != nil {
		return 0, fmt.Errorf("web: %w", err)
	}
	// Name the endpoint without its query string, which may carry keys.
	endpoint := req.URL.Scheme + "://" + req.URL.Host + req.URL.Path
	resp, err := w.client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("web: %s %s: %w", w.method, endpoint, unwrapURLError(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return 0, fmt.Errorf("web: %s %s: status %s", w.method, endpoint, resp.Status)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, MaxWebResponse+1))
	if err != nil {
		return 0, fmt.Errorf("web: %s %s: reading the answer: %w", w.method, endpoint, err)
	}
	if len(data) > MaxWebResponse {
		return 0, fmt.Errorf("web: %s %s: the answer is larger than %d bytes", w.method, endpoint, MaxWebResponse)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return 0, fmt.Errorf("web: %s %s: the answer is not JSON: %w", w.method, endpoint, err)
	}
	x, err := w.path.value(doc)
	if err != nil {
		return 0, fmt.Errorf("web: %s %s: jsonPath %s: %w", w.method, endpoint, w.path.text, err)
	}
	return x, nil
}

// request renders the URL and body for one query.
func (w *Web) request(ctx context.Context, q Query) (*http.Request, error) {
	raw, err := render(w.url, q)
	if err != nil {
		return nil, err
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errors.New("the rendered url is not an http or https URL")
	}
	var body io.Reader
	if w.body != nil {
		b, err := render(w.body, q)
		if err != nil {
			return nil, err
		}
		body = strings.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, w.method, u.String(), body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return req, nil
}

// unwrapURLError drops the *url.Error wrapper, whose message repeats the
// full URL, query string included.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
