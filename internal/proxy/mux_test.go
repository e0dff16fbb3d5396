package proxy

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// named answers its name, so a test sees which route served.
type named string

func (n named) ServeHTTP(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, string(n)) }

func TestMuxMatch(t *testing.T) {
	m, err := NewMux([]MuxRoute{
		{Host: "shop.example", PathPrefix: "/api", Handler: named("shop-api")},
		{Host: "shop.example", Handler: named("shop")},
		{Host: "Admin.Example:8443", Handler: named("admin-8443")},
		{PathPrefix: "/api/", Handler: named("any-api")},
		{PathPrefix: "/static", Handler: named("any-static")},
		{Host: "blog.example", PathPrefix: "/", Handler: named("blog")},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ host, path, want string }{
		{"shop.example", "/api", "shop-api"},
		{"shop.example", "/api/users", "shop-api"},
		{"SHOP.example:8080", "/api/users", "shop-api"}, // no port in the route: any port
		{"shop.example", "/apis", "shop"},               // whole segments only
		{"shop.example", "/", "shop"},
		{"admin.example:8443", "/x", "admin-8443"},
		{"admin.example", "/x", ""}, // the route names a port
		{"other.example", "/api/x", "any-api"},
		{"other.example", "/api", ""}, // "/api/" matches what starts with it
		{"other.example", "/static", "any-static"},
		{"other.example", "/static/app.js", "any-static"},
		{"other.example", "/staticfoo", ""},
		{"[::1]:80", "/static", "any-static"},
		{"blog.example", "/anything", "blog"},
	} {
		r := m.match([]byte(tc.host), []byte(tc.path))
		got := ""
		if r != nil {
			got = string(r.h.(named))
		}
		if got != tc.want {
			t.Errorf("%s%s: routed to %q, want %q", tc.host, tc.path, got, tc.want)
		}
	}
}

func TestNewMuxRefuses(t *testing.T) {
	h := named("x")
	for name, routes := range map[string][]MuxRoute{
		"no routes":        nil,
		"no handler":       {{Host: "a"}},
		"relative prefix":  {{PathPrefix: "api", Handler: h}},
		"duplicate":        {{Host: "A", PathPrefix: "/x", Handler: h}, {Host: "a", PathPrefix: "/x", Handler: h}},
		"duplicate root":   {{Handler: h}, {PathPrefix: "/", Handler: h}},
		"host with a path": {{Host: "a/b", Handler: h}},
	} {
		if _, err := NewMux(routes); err == nil {
			t.Errorf("%s: NewMux accepted it", name)
		}
	}
}

// TestMuxServesSeveralServices puts two proxies and a plain handler
// behind one Server: each proxy's requests go to its own upstream, with
// its own stats, on either path, and a request no route matches is 404.
func TestMuxServesSeveralServices(t *testing.T) {
	shopUp, blogUp := newUpstream(t, "shop-v1"), newUpstream(t, "blog-v1")
	shop := newProxy(t, Config{Stable: shopUp.upstream(t)})
	blog := newProxy(t, Config{Stable: blogUp.upstream(t)})
	m, err := NewMux([]MuxRoute{
		{Host: "shop.example", Handler: shop},
		{PathPrefix: "/blog", Handler: blog},
		{PathPrefix: "/plain", Handler: named("plain")},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, fe := range []struct {
		name string
		url  string
	}{{"fast", serveWith(t, m, ServerConfig{})}, {"net/http", frontMux(t, m)}} {
		t.Run(fe.name, func(t *testing.T) {
			for _, tc := range []struct{ host, path, want string }{
				{"shop.example", "/blog", "shop-v1"},
				{"other", "/blog/post", "blog-v1"},
				{"other", "/plain", "plain"},
				{"shop.example", "/x", "shop-v1"}, // after the plain handler, on the same connection
			} {
				req, _ := http.NewRequest(http.MethodGet, fe.url+tc.path, nil)
				req.Host = tc.host
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK || string(body) != tc.want {
					t.Errorf("%s%s: %d %q, want %q", tc.host, tc.path, resp.StatusCode, body, tc.want)
				}
			}
			req, _ := http.NewRequest(http.MethodGet, fe.url+"/nothing", nil)
			req.Host = "other"
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusNotFound || !strings.Contains(string(body), `no service is routed for host "other" and path "/nothing"`) {
				t.Errorf("unrouted: %d %q", resp.StatusCode, body)
			}
		})
	}
	// Each proxy counted its own requests, and only those.
	settled(t, shop, 4)
	settled(t, blog, 2)
	if s, b := shop.Stats().Stable.Requests, blog.Stats().Stable.Requests; s != 4 || b != 2 {
		t.Errorf("shop counted %d requests, blog %d; want 4 and 2", s, b)
	}
}

// frontMux serves m on a Server as a handler without a fast path, so
// every request takes net/http.
func frontMux(t *testing.T, m *Mux) string {
	return serveWith(t, http.HandlerFunc(m.ServeHTTP), ServerConfig{})
}
