package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"net/http"
	"net/netip"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
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
		if got := string(appendForwardedElement(nil, tc.ip, []byte(tc.host), "http")); got != tc.want {
			t.Errorf("(%q, %q): %s, want %s", tc.ip, tc.host, got, tc.want)
		}
	}
}

// FuzzForwardedHeaders feeds the fast path's header preparation with any
// client address, Host and forwarding headers a client may send: the
// request written upstream must parse, carry exactly one Forwarded and one
// X-Forwarded-For header ending with this hop, and that hop's element must
// read back as the client and host it describes.
func FuzzForwardedHeaders(f *testing.F) {
	f.Add("127.0.0.1", "shop.example", "10.0.0.1", "for=10.0.0.1", "X-Secret, close")
	f.Add("2001:db8::1", "[2001:db8::2]:8080", "", "", "")
	f.Add("unix", `we"ird\host`, "a, b", `for="[::1]";proto=https`, "keep-alive")
	f.Fuzz(func(t *testing.T, ip, host, xff, fwd, connection string) {
		for _, v := range []string{ip, host, xff, fwd, connection} {
			if strings.ContainsAny(v, "\r\n\x00") {
				t.Skip("a parsed header value holds no line break")
			}
		}
		if _, err := netip.ParseAddr(ip); err != nil {
			t.Skip("the client address is an IP address")
		}
		// The request as a client sends it, read by fasthttp's parser
		// as the fast path reads it; what it refuses never gets here.
		raw := "GET / HTTP/1.1\r\nHost: " + host + "\r\n"
		for _, kv := range [][2]string{{"X-Forwarded-For", xff}, {"Forwarded", fwd}, {"Connection", connection}} {
			if kv[1] != "" {
				raw += kv[0] + ": " + kv[1] + "\r\n"
			}
		}
		raw += "X-Secret: s\r\nKeep-Alive: timeout=5\r\n\r\n"
		var h fasthttp.RequestHeader
		if err := h.Read(bufio.NewReader(strings.NewReader(raw))); err != nil {
			t.Skip("fasthttp refuses the request")
		}
		ip = clientIP(ip) // as newConnInfo reads it from the connection
		info := connInfo{clientIP: ip, forwardedFor: appendForwardedFor(nil, ip)}
		prepareUpstreamRequest(&h, &info)

		req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(h.Header())))
		if err != nil {
			t.Fatalf("the request sent upstream does not parse: %v\n%q", err, h.Header())
		}
		if len(req.Header.Values("Forwarded")) != 1 || len(req.Header.Values("X-Forwarded-For")) != 1 {
			t.Fatalf("forwarding headers %q", req.Header)
		}
		if req.Header.Get("Keep-Alive") != "" || req.Header.Get("Connection") != "" {
			t.Fatalf("hop-by-hop headers went upstream: %q", req.Header)
		}
		if got := req.Header.Get("X-Forwarded-For"); !strings.HasSuffix(got, ip) {
			t.Fatalf("X-Forwarded-For %q does not end with the client %q", got, ip)
		}
		got := req.Header.Get("Forwarded")
		prior := strings.TrimSpace(fwd)
		if prior != "" && !strings.HasPrefix(got, prior+", ") {
			t.Fatalf("Forwarded %q lost the prior %q", got, prior)
		}
		last := strings.TrimPrefix(got, prior+", ")
		if prior == "" {
			last = got
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
		if pairs["for"] == "" {
			t.Fatalf("no for pair in %q", last)
		}
	})
}
