package proxy

import (
	"bytes"
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/valyala/fasthttp"
	"golang.org/x/net/http/httpguts"

	"github.com/pipit-dev/pipit/internal/proxy/route"
)

// A request's target is put in one normal form as it arrives, on either
// path, before anything decides on it: the Mux's host and prefix, the
// rules' path conditions, and the upstream all see that one path, so
// that a path cannot be routed as one thing and served as another, nor
// routed differently over HTTP/1.1 and HTTP/2.
//
// The normal form of a path (normalizePath) follows RFC 3986, 6.2.2:
// percent-encoded unreserved characters (ALPHA, DIGIT, "-", ".", "_",
// "~") are decoded, dot-segments are removed (5.2.4; ".." at the root
// stays at the root), and bytes that a path may not hold raw (such as a
// backslash, a space or a non-ASCII byte) are percent-encoded, as Go's
// net/http encodes them when it forwards a request. Other escapes, %2F
// among them, are kept as they are: a decoded %2F would be a separator
// the client did not send. The query is kept as it is, unless it holds
// parameters that url.ParseQuery cannot read (cleanQuery).

// errBadTarget is the answer to a request target without a normal form.
var errBadTarget = errors.New("malformed request target")

// normalizeFastRequest puts the target of ctx's request in normal form,
// in place, for the fast path, with its cleaned query (cleanQuery): the
// routing and the request sent upstream read it from there. A target in absolute-form becomes origin-form, and
// its authority the Host, as net/http does (RFC 9112, 3.2.2). A target
// without a normal form is answered 400, and OPTIONS * (a question about
// the proxy itself) 200 with nothing, as net/http answers it; false is
// returned then. The common target, already normal, is left alone and
// costs no allocation.
func normalizeFastRequest(ctx *fasthttp.RequestCtx) bool {
	req := &ctx.Request
	target := req.Header.RequestURI()
	if string(target) == "*" && req.Header.IsOptions() {
		ctx.Response.Header.SetContentLength(0)
		return false
	}
	authority, path, rest, err := parseTarget(target)
	norm, changed := path, false
	if err == nil {
		norm, changed, err = normalizePath(path)
	}
	if err != nil {
		// Closed after the answer, as net/http closes after a 400: the
		// client's next bytes are not read as a request of their own.
		answerClientFault(ctx, http.StatusBadRequest, err.Error())
		return false
	}
	rest, cleaned := cleanQuery(rest)
	changed = changed || cleaned
	if len(authority) > 0 {
		req.Header.SetHostBytes(authority)
	} else if !changed {
		return true
	}
	// norm and rest may point into the target being replaced: the new
	// one is put together apart first.
	var buf [256]byte
	req.SetRequestURIBytes(append(append(buf[:0], norm...), rest...))
	return true
}

// normalizeRequest is normalizeFastRequest for net/http's path: r's URL
// (and RequestURI) get the normal form of its target, and its cleaned
// query; URL.Path is its decoding, which is what the rules' path
// conditions match. A target
// without a normal form is answered 400, and false returned, as is an
// absolute-form over HTTP/2. net/http has refused some targets already:
// over HTTP/2, an invalid escape or a control byte resets the stream.
func normalizeRequest(w http.ResponseWriter, r *http.Request) bool {
	target := r.RequestURI
	if target == "" {
		target = r.URL.RequestURI() // a request no server read: its URL stands for the target
	}
	authority, path, rest, err := parseTarget(target)
	norm, changed := path, false
	switch {
	case err != nil:
	case authority != "" && r.ProtoMajor != 1:
		// HTTP/2's :path holds no authority (RFC 9113, 8.3.1), and
		// net/http takes the host from :authority: refused, so that
		// the host is never one thing here and another over HTTP/1.1.
		err = errBadTarget
	default:
		norm, changed, err = normalizePath(path)
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return false
	}
	rest, cleaned := cleanQuery(rest)
	if cleaned {
		r.URL.RawQuery, r.URL.ForceQuery = strings.TrimPrefix(rest, "?"), false
	}
	if changed {
		r.URL.Path, _ = url.PathUnescape(norm) // the escapes of a normal form are valid
		r.URL.RawPath = ""
		if strings.IndexByte(norm, '%') >= 0 {
			r.URL.RawPath = norm
		}
	}
	if (changed || cleaned) && r.RequestURI != "" {
		r.RequestURI = norm + rest
	}
	return true
}

// cleanQuery returns the rest of a target after its path ("?" and the
// query, or nothing) as it is routed and sent upstream: as it is, unless
// the query holds a ";", an invalid escape or more parameters than
// url.ParseQuery reads. Then it is what httputil.ReverseProxy sends on
// net/http's path, against parameter smuggling: the parameters
// url.ParseQuery reads, and only those, encoded again and sorted by name.
// The rules' query conditions read those same parameters (route.queryScanner).
// changed reports whether the query was rewritten.
func cleanQuery[S ~string | ~[]byte](rest S) (_ S, changed bool) {
	if len(rest) < 2 || !needsCleaning(rest[1:]) {
		return rest, false
	}
	q, _ := url.ParseQuery(string(rest[1:]))
	if len(q) == 0 {
		return rest[:0], true
	}
	return S("?" + q.Encode()), true
}

// needsCleaning reports whether cleanQuery rewrites query, as
// httputil.ReverseProxy's cleanQueryParams decides.
func needsCleaning[S ~string | ~[]byte](query S) bool {
	params := 1
	for i := 0; i < len(query); i++ {
		switch query[i] {
		case '&':
			params++
		case ';':
			return true
		case '%':
			if _, ok := unhexAt(query, i); !ok {
				return true
			}
			i += 2
		}
	}
	return params > route.MaxQueryParams
}

// parseTarget splits a request target in origin-form (/path?query) or
// absolute-form (scheme://authority/path?query) into its authority (empty
// in origin-form), its path ("/" when an absolute-form has none) and the
// rest: the query with its "?", or nothing. It refuses the other forms
// (authority-form for CONNECT, asterisk-form for OPTIONS *), a target
// with control bytes, and an authority that is not a valid host.
func parseTarget[S ~string | ~[]byte](target S) (authority, path, rest S, err error) {
	for i := 0; i < len(target); i++ {
		if c := target[i]; c < 0x20 || c == 0x7f {
			return authority, path, rest, errBadTarget
		}
	}
	if len(target) == 0 {
		return authority, path, rest, errBadTarget
	}
	if target[0] != '/' {
		n := schemeLen(target)
		if n == 0 {
			return authority, path, rest, errBadTarget
		}
		target = target[n+len("://"):]
		end := 0
		for end < len(target) && target[end] != '/' && target[end] != '?' {
			end++
		}
		authority, target = target[:end], target[end:]
		for i := len(authority) - 1; i >= 0; i-- {
			if authority[i] == '@' { // userinfo, which net/http drops too
				authority = authority[i+1:]
				break
			}
		}
		if len(authority) == 0 || !httpguts.ValidHostHeader(string(authority)) {
			return authority, path, rest, errBadTarget
		}
		if len(target) == 0 || target[0] == '?' {
			return authority, S("/"), target, nil
		}
	}
	for i := 0; i < len(target); i++ {
		if target[i] == '?' {
			return authority, target[:i], target[i:], nil
		}
	}
	return authority, target, target[len(target):], nil
}

// schemeLen is the length of the scheme that starts target and is
// followed by "://" (RFC 3986, 3.1); 0 when there is none.
func schemeLen[S ~string | ~[]byte](target S) int {
	for i := 0; i < len(target); i++ {
		switch c := target[i]; {
		case 'a' <= c|0x20 && c|0x20 <= 'z':
		case i > 0 && ('0' <= c && c <= '9' || c == '+' || c == '-' || c == '.'):
		case i > 0 && c == ':':
			if len(target)-i >= 3 && target[i+1] == '/' && target[i+2] == '/' {
				return i
			}
			return 0
		default:
			return 0
		}
	}
	return 0
}

// normalizePath returns the normal form of an origin-form path (see the
// top of this file); changed reports whether it differs from path, and
// when it does not, path itself is returned, without allocating. A path
// that does not start with "/", holds control bytes or a "%" not followed
// by two hexadecimal digits has no normal form.
func normalizePath[S ~string | ~[]byte](path S) (norm S, changed bool, err error) {
	if len(path) == 0 || path[0] != '/' {
		return path, false, errBadTarget
	}
	for i := 0; i < len(path); i++ {
		switch c := path[i]; {
		case c == '%':
			b, ok := unhexAt(path, i)
			if !ok {
				return path, false, errBadTarget
			}
			changed = changed || isUnreserved(b)
			i += 2
		case c == '/':
			changed = changed || startsWithDotSegment(path[i+1:])
		case c < 0x20 || c == 0x7f:
			return path, false, errBadTarget
		case !isPathChar(c):
			changed = true
		}
	}
	if !changed {
		return path, false, nil
	}
	buf := make([]byte, 0, len(path)+8)
	for i := 0; i < len(path); i++ {
		switch c := path[i]; {
		case c == '%':
			if b, _ := unhexAt(path, i); isUnreserved(b) {
				buf = append(buf, b)
			} else {
				buf = append(buf, path[i:i+3]...)
			}
			i += 2
		case c == '/' || isPathChar(c):
			buf = append(buf, c)
		default:
			buf = append(buf, '%', upperHex[c>>4], upperHex[c&0xf])
		}
	}
	return S(removeDotSegments(buf)), true, nil
}

// removeDotSegments is RFC 3986's remove_dot_segments (5.2.4) for a path
// that starts with "/", done in place: a "." segment goes, a ".." segment
// takes the segment before it along (none above the root), and one at
// the end leaves its "/" ("/a/b/.." is "/a/").
func removeDotSegments(p []byte) []byte {
	out := p[:0] // never longer than what has been read, so never ahead of it
	for i := 0; i < len(p); {
		end := i + 1 // p[i] is a "/"; the segment runs to the next one
		for end < len(p) && p[end] != '/' {
			end++
		}
		switch seg := p[i+1 : end]; string(seg) {
		case ".":
		case "..":
			out = out[:max(bytes.LastIndexByte(out, '/'), 0)]
		default:
			out = append(out, p[i:end]...)
			i = end
			continue
		}
		if end == len(p) {
			out = append(out, '/')
		}
		i = end
	}
	return out
}

// startsWithDotSegment reports whether rest, what follows a "/", is a
// "." or ".." segment.
func startsWithDotSegment[S ~string | ~[]byte](rest S) bool {
	n := 0
	for n < len(rest) && n < 3 && rest[n] == '.' {
		n++
	}
	return (n == 1 || n == 2) && (n == len(rest) || rest[n] == '/')
}

// unhexAt decodes the escape at s[i], a "%"; ok is false when two
// hexadecimal digits do not follow it.
func unhexAt[S ~string | ~[]byte](s S, i int) (b byte, ok bool) {
	if i+2 >= len(s) {
		return 0, false
	}
	hi, ok1 := unhex(s[i+1])
	lo, ok2 := unhex(s[i+2])
	return hi<<4 | lo, ok1 && ok2
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c|0x20 && c|0x20 <= 'f':
		return c | 0x20 - 'a' + 10, true
	}
	return 0, false
}

const upperHex = "0123456789ABCDEF"

// isUnreserved reports whether c is an unreserved character (RFC 3986,
// 2.3): one that means the same escaped or not.
func isUnreserved(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return c == '-' || c == '.' || c == '_' || c == '~'
}

// isPathChar reports whether c may appear raw in a path segment (RFC
// 3986, 3.3: pchar, less the escapes): unreserved, a sub-delim, ":" or
// "@".
func isPathChar(c byte) bool {
	return isUnreserved(c) || strings.IndexByte("!$&'()*+,;=:@", c) >= 0
}
