package proxy

import (
	"bufio"
	"cmp"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path"
	"slices"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/testenv/nettest"
)

func TestNormalizePath(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"/", "/"},
		{"/api/users", "/api/users"},
		{"/.well-known/x", "/.well-known/x"},
		{"/a..b/...", "/a..b/..."},
		{"/api/../secret", "/secret"},
		{"/api/./x", "/api/x"},
		{"/a/b/c/./../../g", "/a/g"}, // RFC 3986, 5.4.2
		{"/a/b/..", "/a/"},
		{"/a/.", "/a/"},
		{"/..", "/"},
		{"/../../x", "/x"}, // clamped at the root
		{"//..", "/"},
		{"/a//../b", "/a/b"},
		{"//api", "//api"},
		{"/%61pi/y", "/api/y"},
		{"/%41%5a%7e%2d%2E%5F", "/AZ~-._"},
		{"/api/%2e%2e/secret", "/secret"},
		{"/api/%2E./%2e/x", "/x"},
		{"/api%2F..%2Fsecret", "/api%2F..%2Fsecret"},
		{"/a%2fb%3A%40", "/a%2fb%3A%40"}, // reserved escapes kept as written
		{"/api/..;/x", "/api/..;/x"},
		{`/api\..\secret`, "/api%5C..%5Csecret"},
		{"/a b\"<>^`{|}#[]", "/a%20b%22%3C%3E%5E%60%7B%7C%7D%23%5B%5D"},
		{"/caf\xc3\xa9", "/caf%C3%A9"},
		{"/!$&'()*+,;=:@-._~", "/!$&'()*+,;=:@-._~"},
		{"/%00", "/%00"},
	} {
		got, changed, err := normalizePath(tc.in)
		if err != nil || got != tc.want || changed != (tc.in != tc.want) {
			t.Errorf("%q: %q, changed %v, %v; want %q", tc.in, got, changed, err, tc.want)
		}
		gotb, _, err := normalizePath([]byte(tc.in))
		if err != nil || string(gotb) != tc.want {
			t.Errorf("%q as bytes: %q, %v", tc.in, gotb, err)
		}
	}
	for _, in := range []string{"", "api", "*", "/%", "/%4", "/%zz", "/a%g0", "/a\x00", "/a\nb", "/a\x7f", "/a\tb"} {
		if got, _, err := normalizePath(in); err == nil {
			t.Errorf("%q: normalised to %q, want it refused", in, got)
		}
	}
}

func TestParseTarget(t *testing.T) {
	for _, tc := range []struct{ in, authority, path, rest string }{
		{"/a?b=c", "", "/a", "?b=c"},
		{"/a?", "", "/a", "?"},
		{"/a/../b?x=/../", "", "/a/../b", "?x=/../"},
		{"http://shop.example/a?q", "shop.example", "/a", "?q"},
		{"HTTPS://shop.example:8443", "shop.example:8443", "/", ""},
		{"http://user:pw@shop.example?q", "shop.example", "/", "?q"},
		{"http://[::1]:80/x", "[::1]:80", "/x", ""},
	} {
		a, p, r, err := parseTarget(tc.in)
		if err != nil || a != tc.authority || p != tc.path || r != tc.rest {
			t.Errorf("%q: %q %q %q, %v", tc.in, a, p, r, err)
		}
	}
	for _, in := range []string{"", "*", "shop.example:443", "http:/x", "http//x", "1http://x/", "http:///x", "http://a b/x", "/a\x01"} {
		if _, _, _, err := parseTarget(in); err == nil {
			t.Errorf("%q: parsed, want it refused", in)
		}
	}
}

// FuzzNormalizePath: a normal form is normal (normalising it again
// changes nothing), holds no dot-segment and no escaped unreserved
// character, and means what the path means to Go: decoded, it is what
// url.PathUnescape and path.Clean make of the path, where those agree
// with RFC 3986 (no empty segment, which Clean removes, and no %2F, which
// Clean would take for a separator; Clean also drops a final slash).
func FuzzNormalizePath(f *testing.F) {
	for _, s := range []string{"/", "/api/../secret", "/%61pi/./y", "/api%2F..%2Fsecret", "//api", "/a/b/..",
		`/api\..\x`, "/%2e%2E/%zz", "/caf\xc3\xa9/../%7e", "/a/.b/..c/...", "/x/%2e"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		norm, changed, err := normalizePath(p)
		if err != nil {
			if _, uerr := url.PathUnescape(p); uerr == nil && strings.HasPrefix(p, "/") && !hasControl([]byte(p)) {
				t.Fatalf("%q refused (%v), though it has a valid decoding", p, err)
			}
			return
		}
		if changed != (norm != p) {
			t.Fatalf("%q: %q, changed %v", p, norm, changed)
		}
		if again, changed, err := normalizePath(norm); err != nil || changed || again != norm {
			t.Fatalf("%q: %q normalises again to %q (%v, %v)", p, norm, again, changed, err)
		}
		for seg := range strings.SplitSeq(norm, "/") {
			if seg == "." || seg == ".." {
				t.Fatalf("%q: %q holds a dot-segment", p, norm)
			}
		}
		decoded, err := url.PathUnescape(norm)
		if err != nil {
			t.Fatalf("%q: %q does not decode: %v", p, norm, err)
		}
		if strings.Contains(p, "//") || strings.Contains(strings.ToUpper(p), "%2F") {
			return
		}
		want, err := url.PathUnescape(p)
		if err != nil {
			t.Fatalf("%q normalised to %q, but Go cannot decode it: %v", p, norm, err)
		}
		if path.Clean(decoded) != path.Clean(want) {
			t.Fatalf("%q: %q decodes to %q; Go makes %q of it", p, norm, decoded, path.Clean(want))
		}
	})
}

// FuzzCleanQuery: the query the fast path sends upstream is the one
// httputil.ReverseProxy sends on net/http's path, read from the request
// it hands its Rewrite; the transport behind it is a stub.
func FuzzCleanQuery(f *testing.F) {
	for _, q := range []string{"", "a=1&b=2", "b=2;c=3&a=1", "q=%zz&a=%41", "a=%4", "&&=&a", "x=/../&z=1&x=2"} {
		f.Add(q)
	}
	var sent string
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			sent = pr.Out.URL.RawQuery
			pr.SetURL(&url.URL{Scheme: "http", Host: "upstream.invalid"})
		},
		Transport: roundTripFunc(func(*http.Request) (*http.Response, error) {
			return &http.Response{StatusCode: http.StatusNoContent, Body: http.NoBody}, nil
		}),
	}
	f.Fuzz(func(t *testing.T, q string) {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.URL.RawQuery = q
		rp.ServeHTTP(httptest.NewRecorder(), r)
		got, _ := cleanQuery("?" + q)
		if got = strings.TrimPrefix(got, "?"); got != sent {
			t.Fatalf("%q: the fast path sends %q, httputil.ReverseProxy %q", q, got, sent)
		}
		if gotb, _ := cleanQuery([]byte("?" + q)); strings.TrimPrefix(string(gotb), "?") != sent {
			t.Fatalf("%q as bytes: %q", q, gotb)
		}
	})
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestFastNormalizationAllocations: the fast path's normalisation of an
// ordinary target allocates nothing.
func TestFastNormalizationAllocations(t *testing.T) {
	var ctx fasthttp.RequestCtx
	if err := ctx.Request.Header.Read(bufio.NewReader(strings.NewReader("GET /api/users/42?page=2 HTTP/1.1\r\nHost: shop.example\r\n\r\n"))); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(1000, func() {
		if !normalizeFastRequest(&ctx) {
			t.Fatal("refused")
		}
	}); n != 0 {
		t.Errorf("%v allocations", n)
	}
	if got := string(ctx.Request.Header.RequestURI()); got != "/api/users/42?page=2" {
		t.Errorf("target %q", got)
	}
}

// pathRouteCase is a target to send, and where it must go.
type pathRouteCase struct {
	method, target, host string
	upstream, want       string // no upstream: answered code by the proxy
	code                 int    // 400 when zero
	h2Refused            bool   // over HTTP/2, refused with 400
}

// pathRouteCases are the targets TestPathsRouteAlikeOnEveryProtocol sends.
var pathRouteCases = []pathRouteCase{
	{target: "/api/users", upstream: "api", want: "/v1/api/users"},
	{target: "/api/../secret", upstream: "root", want: "/secret"},
	{target: "/api/./x", upstream: "api", want: "/v1/api/x"},
	{target: "/%61pi/y", upstream: "api", want: "/v1/api/y"},
	{target: "/api/%2e%2e/secret", upstream: "root", want: "/secret"},
	{target: "/api/%2E%2E/%2e./../../etc?x=/../", upstream: "root", want: "/etc?x=/../"},
	// A query net/http cannot read keeps only what it can,
	// as httputil.ReverseProxy sends it.
	{target: "/api/x?z=/../&a=%41&q=%zz&b=2;c=3", upstream: "api", want: "/v1/api/x?a=A&z=%2F..%2F"},
	{target: "/api/x?q=%zz", upstream: "api", want: "/v1/api/x"},
	{target: "/api/x#y?z", upstream: "api", want: "/v1/api/x%23y?z"},
	{target: "/api%2F..%2Fsecret", upstream: "root", want: "/api%2F..%2Fsecret"},
	{target: "//api", upstream: "root", want: "//api"},
	{target: "/api/..;/x", upstream: "api", want: "/v1/api/..;/x"},
	{target: `/api\..\secret`, upstream: "root", want: "/api%5C..%5Csecret"},
	{target: `/api/..\admin`, upstream: "api", want: "/v1/api/..%5Cadmin"},
	{target: "/api/caf\xc3\xa9", upstream: "api", want: "/v1/api/caf%C3%A9"},
	// The rules' path condition reads the normal form too,
	// decoded: "/admin%2Fx" is under "/admin".
	{target: "/x/../admin/y", upstream: "admin", want: "/admin/y"},
	{target: "/%61dmin", upstream: "admin", want: "/admin"},
	{target: "/adm%69n%2Fx", upstream: "admin", want: "/admin%2Fx"},
	{target: "/api/%00", upstream: "api", want: "/v1/api/%00"},
	{target: "/api/%zz"},
	{target: "/api/%4"},
	{target: "/api/%"},
	{target: "*"},
	{method: http.MethodConnect, target: "shop.example:443"},
	{method: http.MethodOptions, target: "*", code: 200}, // about the proxy itself, as net/http answers
	{target: "/api/\x01"},
	// An absolute-form target's authority is the host, as
	// net/http has it; HTTP/2 has no such form.
	{target: "http://other.example/api/../x", upstream: "other", want: "/x", h2Refused: true},
	{target: "http://shop.example/%61pi/./z", host: "other.example", upstream: "api", want: "/v1/api/z", h2Refused: true},
}

// TestPathsRouteAlikeOnEveryProtocol sends tricky targets over every
// protocol to a Mux of three services: each must be routed by its normal
// form, the same way over HTTP/1.1 (fast path and net/http), h2c and TLS,
// and the upstream must receive that normal form, under its base path,
// byte for byte; a target without a normal form reaches nobody.
func TestPathsRouteAlikeOnEveryProtocol(t *testing.T) {
	ups := map[string]*rawUpstream{}
	for _, name := range []string{"api", "root", "admin", "other"} {
		ups[name] = newRawUpstream(t, name)
	}
	service := func(name, base string, canary *rawUpstream, spec *v1alpha1.TrafficSpec) *Proxy {
		cfg := Config{Stable: Upstream{Version: name, URL: nettest.MustURL(t, ups[name].URL(base))}, Traffic: spec}
		if canary != nil {
			cfg.Canary = &Upstream{Version: canary.name, URL: nettest.MustURL(t, canary.URL(""))}
		}
		return newProxy(t, cfg)
	}
	admin := v1alpha1.TrafficRule{To: v1alpha1.DestinationCanary, Path: &v1alpha1.StringMatch{Prefix: "/admin"}}
	m, err := NewMux([]MuxRoute{
		{PathPrefix: "/api", Handler: service("api", "/v1", nil, nil)},
		{PathPrefix: "/", Handler: service("root", "", ups["admin"], rules(admin))},
		{Host: "other.example", Handler: service("other", "", nil, nil)},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vias(t, m, ServerConfig{}) {
		t.Run(v.name, func(t *testing.T) {
			for _, tc := range pathRouteCases {
				if tc.h2Refused && v.h2 {
					tc.upstream = ""
				}
				host := tc.host
				if host == "" {
					host = "shop.example"
				}
				code, body, err := v.send(t, "127.0.0.1", testRequest{method: tc.method, target: tc.target, host: host})
				got := map[string][]string{}
				for name, u := range ups {
					for _, h := range u.takeHeads() {
						got[name] = append(got[name], rawTarget(h))
					}
				}
				if tc.upstream == "" {
					want := cmp.Or(tc.code, http.StatusBadRequest)
					if (err == nil && code != want) || (err != nil && !v.h2) || len(got) != 0 {
						t.Errorf("%s %q: %d %q (%v), upstreams got %q; want %d from the proxy", tc.method, tc.target, code, body, err, got, want)
					}
					continue
				}
				if err != nil || code != 200 || body != tc.upstream {
					t.Errorf("%q: %d %q (%v), want %s's answer", tc.target, code, body, err, tc.upstream)
				}
				if want := map[string][]string{tc.upstream: {tc.want}}; !maps.EqualFunc(got, want, slices.Equal) {
					t.Errorf("%q: upstreams got %q, want %q", tc.target, got, want)
				}
			}
		})
	}
}
