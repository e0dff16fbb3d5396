package route

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/textproto"
	"os"
	"regexp"
	"regexp/syntax"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/rollout"
)

// rule is one compiled v1alpha1.TrafficRule.
type rule struct {
	toCanary bool
	conds    []condition
}

// matches reports whether every condition of the rule holds for r.
func (ru *rule) matches(r *http.Request) bool {
	for i := range ru.conds {
		if !ru.conds[i].holds(r) {
			return false
		}
	}
	return true
}

// part is the part of a request a condition looks at.
type part uint8

const (
	partHeader part = iota
	partCookie
	partQuery
	partPath
	partMethod
)

// condition is one compiled StringMatch applied to one part of a request.
type condition struct {
	part part
	name string // canonical header name, cookie name or query parameter
	m    matcher
	not  bool
}

// holds reports whether any value of the condition's part matches,
// inverted by not. An absent header, cookie or parameter has no value, so
// it never matches and always satisfies not.
func (c *condition) holds(r *http.Request) bool {
	found := false
	switch c.part {
	case partHeader:
		for _, v := range r.Header[c.name] {
			if found = c.m.match(v); found {
				break
			}
		}
	case partCookie:
		for s := newCookieScanner(r.Header, c.name); !found; {
			v, ok := s.next()
			if !ok {
				break
			}
			found = c.m.match(v)
		}
	case partQuery:
		for s := newQueryScanner(r.URL.RawQuery, c.name); !found; {
			v, ok := s.next()
			if !ok {
				break
			}
			found = c.m.match(v)
		}
	case partPath:
		// The normal form of the path (normalizePath), decoded: the
		// same on every protocol, and as before for a path without
		// escapes or dot-segments.
		found = c.m.match(r.URL.Path)
	case partMethod:
		found = c.m.match(r.Method)
	}
	return found != c.not
}

// matchKind is the operator of a matcher.
type matchKind uint8

const (
	matchPresent matchKind = iota
	matchExact
	matchPrefix
	matchSuffix
	matchRegex
	matchIn
)

// matcher tests one value. Regular expressions are compiled once, here,
// and Go's regexp is RE2: its time is linear in the value's length.
type matcher struct {
	kind matchKind
	s    string
	re   *regexp.Regexp
	in   map[string]struct{}
	file *listFile // with matchIn: values from a file, besides in
}

func (m *matcher) match(v string) bool {
	switch m.kind {
	case matchExact:
		return v == m.s
	case matchPrefix:
		return strings.HasPrefix(v, m.s)
	case matchSuffix:
		return strings.HasSuffix(v, m.s)
	case matchRegex:
		return m.re.MatchString(v)
	case matchIn:
		if _, ok := m.in[v]; ok {
			return true
		}
		return m.file != nil && m.file.contains(v)
	}
	return true // matchPresent: any value
}

// compileRules turns the spec's rules into conditions. Validation has
// already explained any problem to the user; the errors here keep a
// rollout that skipped validation from routing on a half-read rule.
func compileRules(specs []v1alpha1.TrafficRule, lists compileOptions) ([]rule, error) {
	out := make([]rule, 0, len(specs))
	for i, s := range specs {
		ru, err := compileRule(s, lists)
		if err != nil {
			name := fmt.Sprintf("traffic rule %d", i)
			if s.Name != "" {
				name += " (" + s.Name + ")"
			}
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		out = append(out, ru)
	}
	return out, nil
}

func compileRule(s v1alpha1.TrafficRule, lists compileOptions) (rule, error) {
	var ru rule
	switch s.To {
	case v1alpha1.DestinationCanary:
		ru.toCanary = true
	case v1alpha1.DestinationStable:
	default:
		return ru, fmt.Errorf("to must be canary or stable, not %q", s.To)
	}
	var err error
	ru.conds, err = compileConditions(s, lists)
	return ru, err
}

// compileGoals compiles spec.analysis.goals, each as the conditions of a
// rule (its destination unused): goal i is bit i of Decision.Goals.
func compileGoals(goals []v1alpha1.Goal, lists compileOptions) ([]rule, error) {
	if len(goals) > v1alpha1.MaxGoals {
		return nil, fmt.Errorf("%d goals; at most %d are counted", len(goals), v1alpha1.MaxGoals)
	}
	out := make([]rule, 0, len(goals))
	for i, g := range goals {
		conds, err := compileConditions(v1alpha1.TrafficRule{Headers: g.Headers, Path: g.Path, Method: g.Method}, lists)
		if err != nil {
			return nil, fmt.Errorf("goal %d (%s): %w", i, g.Name, err)
		}
		out = append(out, rule{conds: conds})
	}
	return out, nil
}

// compileConditions compiles the conditions of a rule, at least one.
func compileConditions(s v1alpha1.TrafficRule, lists compileOptions) ([]condition, error) {
	var ru rule
	add := func(p part, name string, sm v1alpha1.StringMatch) error {
		m, err := compileMatcher(sm, lists)
		if err != nil {
			return fmt.Errorf("%s: %w", describePart(p, name), err)
		}
		if m.kind == matchPresent && (p == partPath || p == partMethod) {
			return fmt.Errorf("%s: needs exact, prefix, suffix, regex, in or inFile", describePart(p, name))
		}
		ru.conds = append(ru.conds, condition{part: p, name: name, m: m, not: sm.Not})
		return nil
	}
	// Map order is random; sorted names make errors and evaluation
	// order repeatable.
	for _, g := range []struct {
		part part
		m    map[string]v1alpha1.StringMatch
	}{{partHeader, s.Headers}, {partCookie, s.Cookies}, {partQuery, s.QueryParams}} {
		for _, name := range slices.Sorted(maps.Keys(g.m)) {
			key := name
			if g.part == partHeader {
				key = textproto.CanonicalMIMEHeaderKey(name)
			}
			if err := add(g.part, key, g.m[name]); err != nil {
				return nil, err
			}
		}
	}
	if s.Path != nil {
		if err := add(partPath, "", *s.Path); err != nil {
			return nil, err
		}
	}
	if s.Method != nil {
		if err := add(partMethod, "", *s.Method); err != nil {
			return nil, err
		}
	}
	if len(ru.conds) == 0 {
		return nil, fmt.Errorf("matches every request: give it headers, cookies, queryParams, path or method")
	}
	return ru.conds, nil
}

func describePart(p part, name string) string {
	switch p {
	case partHeader:
		return "header " + name
	case partCookie:
		return "cookie " + name
	case partQuery:
		return "query parameter " + name
	case partPath:
		return "path"
	}
	return "method"
}

// matchOperators counts the operators a StringMatch sets; in and inFile
// together are one operator, a list.
func matchOperators(sm v1alpha1.StringMatch) int {
	n := 0
	for _, set := range []bool{sm.Exact != "", sm.Prefix != "", sm.Suffix != "", sm.Regex != "", len(sm.In) > 0 || sm.InFile != ""} {
		if set {
			n++
		}
	}
	return n
}

func compileMatcher(sm v1alpha1.StringMatch, lists compileOptions) (matcher, error) {
	if matchOperators(sm) > 1 {
		return matcher{}, fmt.Errorf("set one of exact, prefix, suffix, regex and a list (in, inFile), not several")
	}
	switch {
	case sm.Exact != "":
		return matcher{kind: matchExact, s: sm.Exact}, nil
	case sm.Prefix != "":
		return matcher{kind: matchPrefix, s: sm.Prefix}, nil
	case sm.Suffix != "":
		return matcher{kind: matchSuffix, s: sm.Suffix}, nil
	case sm.Regex != "":
		re, err := compileRegex(sm.Regex)
		if err != nil {
			return matcher{}, err
		}
		return matcher{kind: matchRegex, re: re}, nil
	case len(sm.In) > 0 || sm.InFile != "":
		m := matcher{kind: matchIn, in: make(map[string]struct{}, len(sm.In))}
		for _, v := range sm.In {
			m.in[v] = struct{}{}
		}
		if sm.InFile != "" {
			f, err := openListFile(sm.InFile, lists)
			if err != nil {
				return matcher{}, err
			}
			m.file = f
		}
		return m, nil
	}
	return matcher{kind: matchPresent}, nil
}

// compileRegex compiles a rule's regular expression so that it must match
// a whole value, as Istio's regex match does. The anchors are added to the
// parsed expression, not to its text: textual wrapping would turn an
// unbalanced expression such as `)|(.*` into a different, valid one, and
// would swallow the closing anchor into an unterminated `\Q` quote.
func compileRegex(expr string) (*regexp.Regexp, error) {
	if len(expr) > v1alpha1.MaxRegexLength {
		return nil, fmt.Errorf("regex is %d bytes long; at most %d are allowed", len(expr), v1alpha1.MaxRegexLength)
	}
	parsed, err := syntax.Parse(expr, syntax.Perl)
	if err != nil {
		return nil, fmt.Errorf("regex: %w", err)
	}
	whole := &syntax.Regexp{Op: syntax.OpConcat, Sub: []*syntax.Regexp{
		{Op: syntax.OpBeginText}, parsed, {Op: syntax.OpEndText},
	}}
	re, err := regexp.Compile(whole.String())
	if err != nil {
		return nil, fmt.Errorf("regex: %w", err)
	}
	return re, nil
}

// listCheckInterval is how often an inFile list is checked for changes.
const listCheckInterval = 2 * time.Second

// maxListFileBytes bounds an inFile list: it is held in memory as a set.
const maxListFileBytes = 16 << 20

// compileOptions is Options, defaults applied.
type compileOptions struct {
	log *slog.Logger
	// interval between two checks of an inFile list for changes.
	interval time.Duration
	// clock reads the time of list checks and of sticky cookies' expiry.
	clock rollout.Clock
	// tasks runs the list checks.
	tasks Tasks
	// clientAddress: see Options.ClientAddress.
	clientAddress func(*http.Request) string
	// goals: see Options.Goals.
	goals []v1alpha1.Goal
}

// listFile is the set of values of an inFile list. Requests read the set
// through an atomic pointer. A request that finds the last check older
// than the interval starts one check in the background, never more than
// one at a time, and the check reloads the file when its size or
// modification time changed. So an unused list costs nothing, and a
// request never waits for the disk. A file that cannot be read keeps the
// values last loaded.
type listFile struct {
	path     string
	opts     compileOptions
	values   atomic.Pointer[map[string]struct{}]
	due      atomic.Int64 // UnixNano of the next check
	checking atomic.Bool
	// Only the goroutine that holds checking uses these.
	size    int64
	mod     time.Time
	lastErr string
}

// openListFile loads the list; a file missing at the start is an error,
// as a typo in its path would otherwise match nobody in silence.
func openListFile(path string, opts compileOptions) (*listFile, error) {
	l := &listFile{path: path, opts: opts}
	if err := l.load(); err != nil {
		return nil, err
	}
	l.due.Store(opts.clock.Now().Add(opts.interval).UnixNano())
	return l, nil
}

func (l *listFile) contains(v string) bool {
	if now := l.opts.clock.Now().UnixNano(); now >= l.due.Load() && l.checking.CompareAndSwap(false, true) {
		l.due.Store(now + int64(l.opts.interval))
		if !l.opts.tasks.Go(func(context.Context) { l.check() }) {
			l.checking.Store(false) // the proxy is closed: no more checks
		}
	}
	_, ok := (*l.values.Load())[v]
	return ok
}

// check reloads the file if it changed. A failure is logged once, not at
// every check, until it turns into another failure or a success.
func (l *listFile) check() {
	defer l.checking.Store(false)
	err := l.load()
	switch {
	case err == nil:
		l.lastErr = ""
	case err.Error() != l.lastErr:
		l.lastErr = err.Error()
		l.opts.log.Warn("inFile list not reloaded; keeping the values loaded before", "err", err)
	}
}

// load reads the file when it differs from the one last loaded.
func (l *listFile) load() error {
	f, err := os.Open(l.path)
	if err != nil {
		return fmt.Errorf("inFile: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("inFile: %w", err)
	}
	if l.values.Load() != nil && fi.Size() == l.size && fi.ModTime().Equal(l.mod) {
		return nil
	}
	if fi.Size() > maxListFileBytes {
		return fmt.Errorf("inFile %s: %d bytes; at most %d are read", l.path, fi.Size(), maxListFileBytes)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxListFileBytes+1))
	if err != nil {
		return fmt.Errorf("inFile: %w", err)
	}
	if len(data) > maxListFileBytes {
		return fmt.Errorf("inFile %s: more than %d bytes", l.path, maxListFileBytes)
	}
	set := parseList(string(data))
	l.values.Store(&set)
	l.size, l.mod = fi.Size(), fi.ModTime()
	l.opts.log.Info("inFile list loaded", "file", l.path, "values", len(set))
	return nil
}

// parseList reads one value a line, trimmed; blank lines and lines
// starting with # are skipped.
func parseList(data string) map[string]struct{} {
	set := make(map[string]struct{})
	for line := range strings.Lines(data) {
		line = strings.TrimSpace(line)
		if line != "" && line[0] != '#' {
			set[line] = struct{}{}
		}
	}
	return set
}
