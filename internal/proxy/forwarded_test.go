package proxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/proxy/route"
	"github.com/pipit-dev/pipit/internal/testenv/nettest"
)

// parseForwardedElement reads one RFC 7239 forwarded-element into its
// pairs, unquoting quoted values.
func parseForwardedElement(s string) (map[string]string, error) {
	pairs := map[string]string{}
	for s != "" {
		key, rest, ok := strings.Cut(s, "=")
		if !ok || key == "" {
			return nil, errors.New("pair without =")
		}
		var val strings.Builder
		if strings.HasPrefix(rest, `"`) {
			i := 1
			for ; i < len(rest) && rest[i] != '"'; i++ {
				if rest[i] == '\\' {
					i++
					if i == len(rest) {
						return nil, errors.New("escape at the end")
					}
				}
				val.WriteByte(rest[i])
			}
			if i == len(rest) {
				return nil, errors.New("unterminated quoted string")
			}
			rest = rest[i+1:]
		} else {
			end := strings.IndexAny(rest, ";,")
			if end < 0 {
				end = len(rest)
			}
			for j := 0; j < end; j++ {
				if !isTokenChar(rest[j]) {
					return nil, errors.New("value is not a token")
				}
			}
			val.WriteString(rest[:end])
			rest = rest[end:]
		}
		pairs[strings.ToLower(key)] = val.String()
		if rest == "" {
			break
		}
		if rest[0] != ';' {
			return nil, errors.New("pairs not separated by ;")
		}
		s = rest[1:]
	}
	return pairs, nil
}

func TestForwardedElement(t *testing.T) {
	for _, tc := range []struct{ ip, host, want string }{
		{"192.0.2.60", "example.com", "for=192.0.2.60;host=example.com;proto=http"},
		{"2001:db8::1", "example.com:8080", `for="[2001:db8::1]";host="example.com:8080";proto=http`},
		{"::ffff:192.0.2.1", "", "for=192.0.2.1;proto=http"},
		{"@", `a"b\c`, `for=unknown;host="a\"b\\c";proto=http`},
		{"10.0.0.1", "bad\x01host", "for=10.0.0.1;proto=http"},
	} {
		if got := string(appendForwardedHost(appendForwardedFor(nil, tc.ip), []byte(tc.host), "http")); got != tc.want {
			t.Errorf("(%q, %q): %s, want %s", tc.ip, tc.host, got, tc.want)
		}
	}
}

// FuzzForwardedHeaders feeds both paths' header preparation with any
// client address, trusted or not, Host and forwarding headers a client
// may send, X-Forwarded-For twice: the request the fast path writes
// upstream must parse and carry exactly one X-Forwarded-For, Forwarded,
// X-Forwarded-Host and -Proto, the same values net/http's path writes for
// the same request; the client's chain must be kept from a trusted peer
// and dropped from any other, and this hop's Forwarded element must read
// back as the client and host it describes.
func FuzzForwardedHeaders(f *testing.F) {
	f.Add("127.0.0.1", "shop.example", "10.0.0.1", "7.7.7.7", "for=10.0.0.1", "X-Secret, close", false)
	f.Add("127.0.0.2", "shop.example", "6.6.6.6, 127.0.0.1", "7.7.7.7", "for=6.6.6.6", "X-Forwarded-For", true)
	f.Add("2001:db8::1", "[2001:db8::2]:8080", "", "", "", "", true)
	f.Add("::ffff:192.0.2.1", `we"ird\host`, "a, b", " ", `for="[::1]";proto=https`, "keep-alive", true)
	f.Fuzz(func(t *testing.T, ip, host, xff, xff2, fwd, connection string, trusted bool) {
		for _, v := range []string{ip, host, xff, xff2, fwd, connection} {
			if strings.ContainsAny(v, "\r\n\x00") {
				t.Skip("a parsed header value holds no line break")
			}
		}
		peer, err := netip.ParseAddr(ip)
		if err != nil {
			t.Skip("the client address is an IP address")
		}
		// The request as a client sends it, read by fasthttp's parser
		// as the fast path reads it and by net/http's as net/http's
		// path does; what either refuses never gets here.
		raw := "GET / HTTP/1.1\r\nHost: " + host + "\r\n"
		for _, kv := range [][2]string{{"X-Forwarded-For", xff}, {"Forwarded", fwd}, {"X-Forwarded-For", xff2}, {"Connection", connection}} {
			if kv[1] != "" {
				raw += kv[0] + ": " + kv[1] + "\r\n"
			}
		}
		raw += "X-Forwarded-Host: lb.example\r\nX-Forwarded-Proto: https\r\nX-Secret: s\r\nKeep-Alive: timeout=5\r\n\r\n"
		var h fasthttp.RequestHeader
		if err := h.Read(bufio.NewReader(strings.NewReader(raw))); err != nil {
			t.Skip("fasthttp refuses the request")
		}
		in, err := http.ReadRequest(bufio.NewReader(strings.NewReader(raw)))
		if err != nil {
			t.Skip("net/http refuses the request")
		}
		var trust trustedProxies
		if trusted {
			a := peer.Unmap().WithZone("")
			trust = trustedProxies{netip.PrefixFrom(a, a.BitLen())}
		}
		info := newConnInfo(net.JoinHostPort(ip, "1234"), nil, trust)
		prepareUpstreamRequest(&h, info)
		std := http.Header{}
		setForwardedHeaders(std, in.WithContext(context.WithValue(context.Background(), connInfoKey{}, info)))

		checkForwardedHeaders(t, &h, in, std, ip, peer, fwd, trusted)
	})
}

// checkForwardedHeaders is FuzzForwardedHeaders's oracle: h is what the
// fast path prepared for the request in, from the client at ip (peer,
// parsed), and std the forwarding headers net/http's path set for it; fwd
// is the Forwarded header the client sent.
func checkForwardedHeaders(t *testing.T, h *fasthttp.RequestHeader, in *http.Request, std http.Header, ip string, peer netip.Addr, fwd string, trusted bool) {
	req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(h.Header())))
	if err != nil {
		t.Fatalf("the request sent upstream does not parse: %v\n%q", err, h.Header())
	}
	for _, k := range forwardingHeaders {
		if got, want := req.Header[k], std[k]; !slices.Equal(got, want) || len(got) > 1 {
			t.Fatalf("%s: the fast path sent %q, net/http's path %q", k, got, want)
		}
	}
	if req.Header.Get("Keep-Alive") != "" || req.Header.Get("Connection") != "" {
		t.Fatalf("hop-by-hop headers went upstream: %q", req.Header)
	}
	var chain []string
	if trusted {
		for _, v := range in.Header["X-Forwarded-For"] {
			if v = strings.Trim(v, " \t"); v != "" {
				chain = append(chain, v)
			}
		}
	}
	if got, want := req.Header.Get("X-Forwarded-For"), strings.Join(append(chain, route.ClientIP(ip)), ", "); got != want {
		t.Fatalf("X-Forwarded-For %q, want %q", got, want)
	}
	if got, want := req.Header.Get("X-Forwarded-Host")+" "+req.Header.Get("X-Forwarded-Proto"), req.Host+" http"; trusted && got != "lb.example https" || !trusted && got != want {
		t.Fatalf("X-Forwarded-Host and -Proto %q, trusted %v", got, trusted)
	}
	got := req.Header.Get("Forwarded")
	prior := strings.Trim(fwd, " \t")
	last := got
	if trusted && prior != "" {
		if !strings.HasPrefix(got, prior+", ") {
			t.Fatalf("Forwarded %q lost the prior %q", got, prior)
		}
		last = strings.TrimPrefix(got, prior+", ")
	}
	pairs, err := parseForwardedElement(last)
	if err != nil {
		t.Fatalf("this hop's element %q: %v", last, err)
	}
	if pairs["proto"] != "http" {
		t.Fatalf("proto %q", pairs["proto"])
	}
	if wantHost := req.Host; wantHost != "" && !hasControl([]byte(wantHost)) && pairs["host"] != wantHost {
		t.Fatalf("host pair %q, the request's host %q", pairs["host"], wantHost)
	}
	if a, err := netip.ParseAddr(strings.Trim(pairs["for"], "[]")); err != nil || a != peer.Unmap().WithZone("") {
		t.Fatalf("for pair %q, the peer %s", pairs["for"], peer)
	}
}

// TestForwardingHeadersOnEveryProtocol sends a client's forwarding
// headers, each repeated, over every protocol from a trusted and from an
// untrusted peer, and reads what the upstream received byte for byte:
// one header of each, the chain kept and extended from the trusted peer
// only, and no header that any Connection header names.
func TestForwardingHeadersOnEveryProtocol(t *testing.T) {
	up := newRawUpstream(t, "v1")
	p := newProxy(t, Config{Stable: Upstream{Version: "v1", URL: nettest.MustURL(t, up.URL(""))}})
	cfg := ServerConfig{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}}
	forwarding := [][2]string{
		{"X-Forwarded-For", "6.6.6.6, 127.0.0.1"},
		{"Forwarded", "for=6.6.6.6"},
		{"X-Forwarded-Host", "lb.example"},
		{"X-Forwarded-Proto", "https"},
		{"X-Forwarded-For", "7.7.7.7"},
		{"Forwarded", `for="[2001:db8::7]";proto=https`},
		{"X-Forwarded-Host", "evil.example"},
		{"X-Forwarded-Proto", "http"},
		{"X-Forwarded", "for=6.6.6.6"},
	}
	hopByHop := [][2]string{
		{"Connection", "X-Secret-1"},
		{"X-Secret-1", "s"},
		{"Connection", "keep-alive, X-Secret-2"},
		{"X-Secret-2", "s"},
		{"Keep-Alive", "timeout=5"},
		{"Proxy-Connection", "keep-alive"},
	}
	for _, v := range vias(t, p, cfg) {
		header := forwarding
		if !v.h2 { // HTTP/2 refuses connection-specific fields
			header = append(slices.Clone(forwarding), hopByHop...)
		}
		for _, tc := range []struct {
			from               string
			xff, fwd, xfh, xfp string
		}{
			{"127.0.0.3", "127.0.0.3", "for=127.0.0.3;host=shop.example;proto=" + v.scheme, "shop.example", v.scheme},
			{"127.0.0.2", "6.6.6.6, 127.0.0.1, 7.7.7.7, 127.0.0.2",
				`for=6.6.6.6, for="[2001:db8::7]";proto=https, for=127.0.0.2;host=shop.example;proto=` + v.scheme,
				"lb.example", "https"},
		} {
			t.Run(v.name+" from "+tc.from, func(t *testing.T) {
				code, body, err := v.send(t, tc.from, testRequest{target: "/x", host: "shop.example", header: header})
				if err != nil || code != http.StatusOK || body != "v1" {
					t.Fatalf("%d %q, %v", code, body, err)
				}
				heads := up.takeHeads()
				if len(heads) != 1 {
					t.Fatalf("the upstream got %d requests", len(heads))
				}
				for _, f := range []struct {
					name string
					want []string
				}{
					{"X-Forwarded-For", []string{tc.xff}},
					{"Forwarded", []string{tc.fwd}},
					{"X-Forwarded-Host", []string{tc.xfh}},
					{"X-Forwarded-Proto", []string{tc.xfp}},
					{"X-Forwarded", nil},
					{"Connection", nil},
					{"X-Secret-1", nil},
					{"X-Secret-2", nil},
					{"Keep-Alive", nil},
					{"Proxy-Connection", nil},
				} {
					if got := rawFields(heads[0], f.name); !slices.Equal(got, f.want) {
						t.Errorf("%s: upstream got %q, want %q\n%s", f.name, got, f.want, heads[0])
					}
				}
			})
		}
	}
}

// TestTrustedProxyClientAddress: a user keyed by clientIP is the client
// a trusted proxy forwards for, over every protocol, and the peer itself
// when the peer is not trusted or names no address.
func TestTrustedProxyClientAddress(t *testing.T) {
	stable, canary := newRawUpstream(t, "v1"), newRawUpstream(t, "v2")
	const weight = 50 * v1alpha1.PercentScale
	p := newProxy(t, Config{
		Stable: Upstream{Version: "v1", URL: nettest.MustURL(t, stable.URL(""))},
		Canary: &Upstream{Version: "v2", URL: nettest.MustURL(t, canary.URL(""))},
		Weight: weight, Name: "shop",
		Traffic: &v1alpha1.TrafficSpec{UserKey: []v1alpha1.UserKeySource{{ClientIP: true}}},
	})
	// The same split keyed by a header, to tell where a key goes.
	byHeader, err := route.Compile(&v1alpha1.TrafficSpec{UserKey: []v1alpha1.UserKeySource{{Header: "X-Key"}}}, route.Options{Name: "shop"})
	if err != nil {
		t.Fatal(err)
	}
	split, err := route.NewTable(weight, byHeader, route.CookieKeys{})
	if err != nil {
		t.Fatal(err)
	}
	split = split.WithUpstreams("v1", "v2", true)
	versionOf := func(key string) string {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Header.Set("X-Key", key)
		if split.Route(r).Canary {
			return "v2"
		}
		return "v1"
	}
	// Two clients on either side of the split, so that reading the
	// wrong address is seen.
	clients := map[string]string{}
	for i := 1; len(clients) < 2; i++ {
		addr := fmt.Sprintf("198.51.100.%d", i)
		if _, ok := clients[versionOf(addr)]; !ok {
			clients[versionOf(addr)] = addr
		}
	}
	cfg := ServerConfig{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32"), netip.MustParsePrefix("10.0.0.0/8")}}
	for _, v := range vias(t, p, cfg) {
		t.Run(v.name, func(t *testing.T) {
			for _, tc := range []struct {
				from, xff, client string
			}{
				{"127.0.0.2", clients["v1"], clients["v1"]},
				{"127.0.0.2", clients["v2"], clients["v2"]},
				{"127.0.0.2", "6.6.6.6, " + clients["v2"] + ", 10.1.2.3", clients["v2"]},
				{"127.0.0.2", clients["v1"] + ", junk", "127.0.0.2"},
				{"127.0.0.2", "10.9.9.9", "127.0.0.2"},
				{"127.0.0.3", clients["v1"], "127.0.0.3"},
				{"127.0.0.3", clients["v2"], "127.0.0.3"},
			} {
				code, body, err := v.send(t, tc.from, testRequest{target: "/", host: "shop.example", header: [][2]string{{"X-Forwarded-For", tc.xff}}})
				if err != nil || code != http.StatusOK {
					t.Fatalf("%d %q, %v", code, body, err)
				}
				if want := versionOf(tc.client); body != want {
					t.Errorf("from %s with X-Forwarded-For %q: served by %s, want %s, the bucket of %s", tc.from, tc.xff, body, want, tc.client)
				}
			}
			stable.takeHeads()
			canary.takeHeads()
		})
	}
}

func TestEffectiveClientAddr(t *testing.T) {
	trust, err := newTrustedProxies([]netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8::/32"), netip.MustParsePrefix("::ffff:172.16.0.0/108"),
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		peer string
		xff  []string
		want string
	}{
		{"192.0.2.1:1", []string{"1.1.1.1"}, "192.0.2.1"},
		{"10.0.0.1:1", nil, "10.0.0.1"},
		{"10.0.0.1:1", []string{"1.1.1.1"}, "1.1.1.1"},
		{"10.0.0.1:1", []string{"6.6.6.6, 1.1.1.1"}, "1.1.1.1"},
		{"10.0.0.1:1", []string{"1.1.1.1, 10.0.0.2"}, "1.1.1.1"},
		{"10.0.0.1:1", []string{"6.6.6.6", "1.1.1.1, 10.0.0.2", "10.0.0.3"}, "1.1.1.1"},
		{"10.0.0.1:1", []string{"10.0.0.2, 10.0.0.3"}, "10.0.0.1"},
		{"10.0.0.1:1", []string{"1.1.1.1, junk"}, "10.0.0.1"},
		{"10.0.0.1:1", []string{"junk, 1.1.1.1"}, "1.1.1.1"},
		{"10.0.0.1:1", []string{" 1.1.1.1 ,\t, "}, "1.1.1.1"},
		{"10.0.0.1:1", []string{"1.1.1.1:8080"}, "1.1.1.1"},
		{"10.0.0.1:1", []string{"[2001:db9::1]:443"}, "2001:db9::1"},
		{"10.0.0.1:1", []string{"::ffff:1.1.1.1"}, "1.1.1.1"},
		{"10.0.0.1:1", []string{"fe80::1%eth0"}, "fe80::1"},
		{"[::ffff:10.0.0.1]:1", []string{"1.1.1.1"}, "1.1.1.1"},
		{"[2001:db8::5]:1", []string{"2001:DB9::0:1"}, "2001:db9::1"},
		{"172.16.0.9:1", []string{"1.1.1.1"}, "1.1.1.1"}, // an IPv4-mapped prefix trusts IPv4 peers
		{"@", []string{"1.1.1.1"}, "@"},
	} {
		info := newConnInfo(tc.peer, nil, trust)
		if got := effectiveClientAddr(info, tc.xff); got != tc.want {
			t.Errorf("peer %s, X-Forwarded-For %q: %q, want %q", tc.peer, tc.xff, got, tc.want)
		}
		var raw [][]byte
		for _, v := range tc.xff {
			raw = append(raw, []byte(v))
		}
		if got := effectiveClientAddr(info, raw); got != tc.want {
			t.Errorf("peer %s, X-Forwarded-For %q as bytes: %q, want %q", tc.peer, tc.xff, got, tc.want)
		}
	}
	if _, err := newTrustedProxies([]netip.Prefix{{}}); err == nil {
		t.Error("an invalid prefix was accepted")
	}
}

// TestPrepareUpstreamRequestAllocations: the fast path writes the
// forwarding headers of an ordinary request without allocating, and
// those of a request through a trusted proxy too.
func TestPrepareUpstreamRequestAllocations(t *testing.T) {
	for _, tc := range []struct {
		name, header string
		trust        trustedProxies
	}{
		{"ordinary", "", nil},
		{"trusted proxy", "X-Forwarded-For: 198.51.100.7\r\nForwarded: for=198.51.100.7\r\nX-Forwarded-Proto: https\r\n",
			trustedProxies{netip.MustParsePrefix("127.0.0.0/8")}},
	} {
		var orig, h fasthttp.RequestHeader
		raw := "GET /api/users/42 HTTP/1.1\r\nHost: shop.example\r\nUser-Agent: test\r\n" + tc.header + "\r\n"
		if err := orig.Read(bufio.NewReader(strings.NewReader(raw))); err != nil {
			t.Fatal(err)
		}
		info := newConnInfo("127.0.0.1:5000", nil, tc.trust)
		if n := testing.AllocsPerRun(1000, func() {
			orig.CopyTo(&h) // the header as read, each time, as fasthttp reuses it
			prepareUpstreamRequest(&h, info)
		}); n != 0 {
			t.Errorf("%s: %v allocations", tc.name, n)
		}
	}
}
