package spec

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"

	"golang.org/x/net/http/httpguts"

	"github.com/pipit-dev/pipit/api/v1alpha1"
)

// ValidateTraffic checks a service's traffic section, written at path
// (spec.service.traffic), and returns every problem. It reads no file:
// an inFile list is opened when the proxy starts.
func ValidateTraffic(t *v1alpha1.TrafficSpec, path string) Errors {
	if t == nil {
		return nil
	}
	var v validator
	v.traffic(t, path)
	return v.errs
}

func (v *validator) traffic(t *v1alpha1.TrafficSpec, p string) {
	for i, s := range t.UserKey {
		v.userKey(fmt.Sprintf("%s.userKey[%d]", p, i), s, i == len(t.UserKey)-1)
	}
	for i, r := range t.Rules {
		v.trafficRule(fmt.Sprintf("%s.rules[%d]", p, i), &r)
	}
	if s := t.StickySession; s != nil {
		if s.CookieName != "" && !httpguts.ValidHeaderFieldName(s.CookieName) {
			v.add(p+".stickySession.cookieName", "%q is not a valid cookie name: use letters, digits and !#$%%&'*+-.^_`|~", clip(s.CookieName))
		}
		v.positive(p+".stickySession.ttl", s.TTL)
	}
	if m := t.Mirror; m != nil {
		if !shareInRange(m.Percent) {
			v.add(p+".mirror.percent", "must be more than 0 and at most 100, not %s", num(m.Percent))
		}
		if m.MaxBodyBytes < 0 || m.MaxBodyBytes > v1alpha1.MaxMirrorBodyBytes {
			v.add(p+".mirror.maxBodyBytes", "must be from 0 (the default, 65536) to %d, not %d", v1alpha1.MaxMirrorBodyBytes, m.MaxBodyBytes)
		}
		for i, method := range m.Methods {
			if method == "" || method != strings.ToUpper(method) || !httpguts.ValidHeaderFieldName(method) {
				v.add(fmt.Sprintf("%s.mirror.methods[%d]", p, i), "%q is not an HTTP method: write it upper case, such as GET", clip(method))
			}
		}
	}
}

func (v *validator) userKey(p string, s v1alpha1.UserKeySource, last bool) {
	var set []string
	if s.Header != "" {
		set = append(set, "header")
		v.headerName(p+".header", s.Header)
	}
	if s.Cookie != "" {
		set = append(set, "cookie")
		v.cookieName(p+".cookie", s.Cookie)
	}
	if s.Query != "" {
		set = append(set, "query")
	}
	if s.ClientIP {
		set = append(set, "clientIP")
		if !last {
			v.add(p+".clientIP", "the client's address is the last resort: put it last")
		}
	}
	switch len(set) {
	case 0:
		v.add(p, "set one of header, cookie, query or clientIP")
	case 1:
	default:
		v.add(p, "sets %s; give each its own entry, in the order they are tried", strings.Join(set, " and "))
	}
}

func (v *validator) trafficRule(p string, r *v1alpha1.TrafficRule) {
	switch r.To {
	case v1alpha1.DestinationCanary, v1alpha1.DestinationStable:
	case "":
		v.add(p+".to", "is required: canary or stable")
	default:
		v.add(p+".to", "must be canary or stable, not %q", clip(string(r.To)))
	}
	v.requestConditions(p, r)
	if len(r.Headers)+len(r.Cookies)+len(r.QueryParams) == 0 && r.Path == nil && r.Method == nil {
		v.add(p, "matches every request: give it headers, cookies, queryParams, path or method")
	}
}

// requestConditions checks the conditions of a rule or a goal (written
// as a rule) on a request's headers, cookies, parameters, path and
// method.
func (v *validator) requestConditions(p string, r *v1alpha1.TrafficRule) {
	for _, name := range slices.Sorted(maps.Keys(r.Headers)) {
		q := index(p+".headers", clip(name))
		v.headerName(q, name)
		v.stringMatch(q, r.Headers[name], true)
	}
	for _, name := range slices.Sorted(maps.Keys(r.Cookies)) {
		q := index(p+".cookies", clip(name))
		v.cookieName(q, name)
		v.stringMatch(q, r.Cookies[name], true)
	}
	for _, name := range slices.Sorted(maps.Keys(r.QueryParams)) {
		q := index(p+".queryParams", clip(name))
		if name == "" {
			v.add(q, "a query parameter needs a name")
		}
		v.stringMatch(q, r.QueryParams[name], true)
	}
	if r.Path != nil {
		v.stringMatch(p+".path", *r.Path, false)
		for _, s := range []string{r.Path.Exact, r.Path.Prefix} {
			if s != "" && !strings.HasPrefix(s, "/") {
				v.add(p+".path", "paths start with /: %q never matches", clip(s))
			}
		}
	}
	if r.Method != nil {
		v.stringMatch(p+".method", *r.Method, false)
		for _, s := range append([]string{r.Method.Exact}, r.Method.In...) {
			if s != "" && s != strings.ToUpper(s) {
				v.add(p+".method", "methods are upper case: %q never matches; write %q", clip(s), clip(strings.ToUpper(s)))
			}
		}
	}
}

// stringMatch checks one condition. Without an operator a condition asks
// for presence, which has no meaning for a path or a method.
func (v *validator) stringMatch(p string, m v1alpha1.StringMatch, presence bool) {
	var ops []string
	for _, op := range []struct {
		name string
		set  bool
	}{
		{"exact", m.Exact != ""}, {"prefix", m.Prefix != ""}, {"suffix", m.Suffix != ""},
		{"regex", m.Regex != ""}, {"in", len(m.In) > 0}, {"inFile", m.InFile != ""},
	} {
		if op.set {
			ops = append(ops, op.name)
		}
	}
	list := len(m.In) > 0 && m.InFile != "" // in and inFile together are one list
	switch {
	case len(ops) == 0 && !presence:
		v.add(p, "needs one of exact, prefix, suffix, regex, in or inFile")
	case len(ops) > 1 && !(len(ops) == 2 && list):
		v.add(p, "sets %s; set one of exact, prefix, suffix, regex and a list (in, inFile)", strings.Join(ops, " and "))
	}
	if m.Regex != "" {
		if len(m.Regex) > v1alpha1.MaxRegexLength {
			v.add(p+".regex", "is %d bytes long; at most %d are allowed", len(m.Regex), v1alpha1.MaxRegexLength)
		} else if _, err := regexp.Compile(m.Regex); err != nil {
			v.add(p+".regex", "is not an RE2 regular expression: %v", err)
		}
	}
}

func (v *validator) headerName(p, name string) {
	if !httpguts.ValidHeaderFieldName(name) {
		v.add(p, "%q is not a valid header name", clip(name))
	}
}

func (v *validator) cookieName(p, name string) {
	if !httpguts.ValidHeaderFieldName(name) { // cookie names are tokens, as header names
		v.add(p, "%q is not a valid cookie name", clip(name))
	}
}
