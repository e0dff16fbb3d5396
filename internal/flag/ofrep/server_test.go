package ofrep

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/controlapi"
	"github.com/pipit-dev/pipit/internal/flag"
	"github.com/pipit-dev/pipit/internal/proxy/route"
)

const token = "0123456789abcdef"

// flagSet is a fixed Flags.
type flagSet []*flag.Live

func (s flagSet) Flag(key string) (*flag.Live, bool) {
	for _, l := range s {
		if l.Flag().Key() == key {
			return l, true
		}
	}
	return nil, false
}

func (s flagSet) All() []*flag.Live { return s }

// serve starts the handler behind the server's own limits, with the
// write-up's flag at 50% and a string flag with no rollout.
func serve(t *testing.T) (*httptest.Server, *flag.Live) {
	t.Helper()
	mk := func(key string, variants map[string]string, def string) *flag.Live {
		spec := &v1alpha1.FlagSpec{Key: key, DefaultVariant: def, Variants: map[string]apiextensionsv1.JSON{}}
		for n, v := range variants {
			spec.Variants[n] = apiextensionsv1.JSON{Raw: []byte(v)}
		}
		f, err := flag.Compile(spec, route.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return flag.NewLive(f, def, nil)
	}
	checkout := mk("new-checkout", map[string]string{"on": "true", "off": "false"}, "off")
	if err := checkout.DeployCanary(context.Background(), v1alpha1.VersionRef{Version: "on"}); err != nil {
		t.Fatal(err)
	}
	if err := checkout.SetWeight(context.Background(), 50*v1alpha1.PercentScale, true); err != nil {
		t.Fatal(err)
	}
	banner := mk("banner", map[string]string{"blue": `"blue"`, "red": `"red"`}, "blue")
	srv := httptest.NewUnstartedServer(NewHandler(flagSet{banner, checkout}, controlapi.SingleToken(token), nil))
	cfg := NewServer("", nil, nil)
	srv.Config.ReadHeaderTimeout, srv.Config.ReadTimeout, srv.Config.MaxHeaderBytes = cfg.ReadHeaderTimeout, cfg.ReadTimeout, cfg.MaxHeaderBytes
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, checkout
}

func post(t *testing.T, url, body string, headers ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header[headers[i]] = append(req.Header[headers[i]][:0:0], strings.Split(headers[i+1], "\n")...)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// answers are requests and what OFREP answers: status and a part of
// the body.
var answers = []struct {
	name, path, body string
	headers          []string
	status           int
	want             string
}{
	{"static flag", "/ofrep/v1/evaluate/flags/banner", `{"context":{}}`, nil, 200, `"key":"banner","value":"blue","variant":"blue","reason":"DEFAULT"`},
	{"split", "/ofrep/v1/evaluate/flags/new-checkout", `{"context":{"targetingKey":"user-1"}}`, nil, 200, `"reason":"SPLIT"`},
	{"empty body", "/ofrep/v1/evaluate/flags/banner", ``, nil, 200, `"variant":"blue"`},
	{"unknown flag", "/ofrep/v1/evaluate/flags/nope", `{"context":{}}`, nil, 404, `{"key":"nope","errorCode":"FLAG_NOT_FOUND"`},
	{"no targeting key", "/ofrep/v1/evaluate/flags/new-checkout", `{"context":{"plan":"x"}}`, nil, 400, `"errorCode":"TARGETING_KEY_MISSING"`},
	{"context not an object", "/ofrep/v1/evaluate/flags/new-checkout", `{"context":[1,2]}`, nil, 400, `"errorCode":"INVALID_CONTEXT"`},
	{"malformed JSON", "/ofrep/v1/evaluate/flags/new-checkout", `{"context":{`, nil, 400, `"errorCode":"PARSE_ERROR"`},
	{"two values", "/ofrep/v1/evaluate/flags/banner", `{} {}`, nil, 400, `"errorCode":"PARSE_ERROR"`},
	{"huge body", "/ofrep/v1/evaluate/flags/banner", `{"context":{"a":"` + strings.Repeat("x", MaxEvaluationBody) + `"}}`, nil, 413, `"errorCode":"GENERAL"`},
	{"no token", "/ofrep/v1/evaluate/flags/banner", `{}`, []string{"Authorization", ""}, 401, "missing bearer token"},
	{"forged token", "/ofrep/v1/evaluate/flags/banner", `{}`, []string{"Authorization", "Bearer " + token + "0"}, 401, "invalid bearer token"},
	{"two tokens", "/ofrep/v1/evaluate/flags/banner", `{}`, []string{"Authorization", "Bearer forged\nBearer " + token}, 401, "missing bearer token"},
	{"basic auth", "/ofrep/v1/evaluate/flags/banner", `{}`, []string{"Authorization", "Basic " + token}, 401, "missing bearer token"},
	{"events", "/v1/flags/new-checkout/events", `{"events":[{"targetingKey":"u","kind":"error","latencyMs":12}]}`, nil, 202, `{"accepted":1}`},
	{"bad event", "/v1/flags/new-checkout/events", `{"events":[{"targetingKey":"u","kind":"success"},{"kind":"error"}]}`, nil, 400, `events[1]: targetingKey is required`},
	{"events of no flag", "/v1/flags/nope/events", `{"events":[]}`, nil, 404, `FLAG_NOT_FOUND`},
	{"too many events", "/v1/flags/new-checkout/events", `{"events":[` + strings.Repeat(`{"targetingKey":"u","kind":"success"},`, MaxEvents) + `{"targetingKey":"u","kind":"success"}]}`, nil, 413, "at most 1000"},
}

// TestAnswers checks OFREP's answers and the refusals of an attacker's
// requests.
func TestAnswers(t *testing.T) {
	srv, checkout := serve(t)
	for _, tc := range answers {
		resp, body := post(t, srv.URL+tc.path, tc.body, tc.headers...)
		if resp.StatusCode != tc.status || !strings.Contains(body, tc.want) {
			t.Errorf("%s: %d %s; want %d with %s", tc.name, resp.StatusCode, body, tc.status, tc.want)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s: content type %q", tc.name, ct)
		}
	}
	// Only the one good batch counted, the refused one not in part.
	if s := checkout.Stats(); s.Canary.Requests+s.Stable.Requests != 1 {
		t.Errorf("%d events counted, want 1", s.Canary.Requests+s.Stable.Requests)
	}
}

// TestBulkETag checks the bulk answer, its ETag, 304 for a client that
// has it, and a new ETag once the rollout moves.
func TestBulkETag(t *testing.T) {
	srv, checkout := serve(t)
	url := srv.URL + "/ofrep/v1/evaluate/flags"
	resp, body := post(t, url, `{"context":{"targetingKey":"user-7"}}`)
	etag := resp.Header.Get("ETag")
	var got struct {
		Flags []map[string]any `json:"flags"`
	}
	if err := json.Unmarshal([]byte(body), &got); err != nil || resp.StatusCode != 200 || etag == "" || len(got.Flags) != 2 {
		t.Fatalf("bulk: %d %s %q %v", resp.StatusCode, body, etag, err)
	}
	if resp, body := post(t, url, `{"context":{"targetingKey":"user-7"}}`, "If-None-Match", `"other", W/`+etag); resp.StatusCode != 304 || body != "" {
		t.Errorf("If-None-Match: %d %q, want 304", resp.StatusCode, body)
	}
	// Without a key the split flag fails alone, in the list.
	if _, body := post(t, url, `{"context":{}}`); !strings.Contains(body, `{"key":"new-checkout","errorCode":"TARGETING_KEY_MISSING"`) || !strings.Contains(body, `"key":"banner"`) {
		t.Errorf("bulk without a key: %s", body)
	}
	if err := checkout.Promote(context.Background(), v1alpha1.VersionRef{Version: "on"}); err != nil {
		t.Fatal(err)
	}
	resp, _ = post(t, url, `{"context":{"targetingKey":"user-7"}}`, "If-None-Match", etag)
	if resp.StatusCode != 200 || resp.Header.Get("ETag") == etag {
		t.Errorf("after a promotion: %d, ETag %s", resp.StatusCode, resp.Header.Get("ETag"))
	}
}

// TestConfiguration checks OFREP's configuration: polling with its
// least interval, no caching of single evaluations, an ETag, and the
// token asked for as on every route.
func TestConfiguration(t *testing.T) {
	srv, _ := serve(t)
	get := func(headers map[string]string) (*http.Response, string) {
		req, err := http.NewRequest(http.MethodGet, srv.URL+"/ofrep/v1/configuration", nil)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range headers {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	bearer := "Bearer " + token
	resp, body := get(map[string]string{"Authorization": bearer})
	want := `{"name":"pipit","capabilities":{"cacheInvalidation":{"polling":{"enabled":true,"minPollingIntervalMs":1000}},` +
		`"flagEvaluation":{"supportedTypes":["boolean","string","int","float","object"]},"caching":{"enabled":false}}}`
	if resp.StatusCode != 200 || body != want || resp.Header.Get("ETag") == "" {
		t.Fatalf("configuration: %d %s (ETag %q)\nwant %s", resp.StatusCode, body, resp.Header.Get("ETag"), want)
	}
	if resp, body := get(map[string]string{"Authorization": bearer, "If-None-Match": resp.Header.Get("ETag")}); resp.StatusCode != 304 || body != "" {
		t.Errorf("If-None-Match: %d %q, want 304", resp.StatusCode, body)
	}
	if resp, _ := get(nil); resp.StatusCode != 401 {
		t.Errorf("without a token: %d, want 401", resp.StatusCode)
	}
}

// TestHugeHeaderRefused checks the header limit: a client that sends
// more than MaxHeaderBytes of header gets 431, not a buffer.
func TestHugeHeaderRefused(t *testing.T) {
	srv, _ := serve(t)
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /ofrep/v1/evaluate/flags/banner HTTP/1.1\r\nHost: x\r\nX-Big: %s\r\n\r\n", strings.Repeat("a", 2*MaxHeaderBytes+4096))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("status %d, want 431", resp.StatusCode)
	}
}
