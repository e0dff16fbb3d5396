package metric

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// jsonPath is the subset of JSONPath that selects one value: fields and
// array indexes from the root, as in {$.data.rate}, $.items[0].value,
// {.data.rate} or $['a.b'][-1]. Wildcards, slices, filters and recursive
// descent select several values and are refused.
type jsonPath struct {
	text  string
	steps []pathStep
}

// pathStep is a field name or, when isIndex, an array index (negative
// counts from the end).
type pathStep struct {
	key     string
	index   int
	isIndex bool
}

// parseJSONPath parses a path; "{...}" braces and the leading "$" are
// optional, as in kubectl and Argo Rollouts.
func parseJSONPath(text string) (jsonPath, error) {
	p := jsonPath{text: text}
	s := strings.TrimSpace(text)
	if strings.HasPrefix(s, "{") {
		if !strings.HasSuffix(s, "}") {
			return p, fmt.Errorf("jsonPath %q: missing closing }", text)
		}
		s = strings.TrimSpace(s[1 : len(s)-1])
	}
	s = strings.TrimPrefix(s, "$")
	if s == "" && !strings.Contains(text, "$") {
		return p, errors.New("jsonPath is empty")
	}
	for s != "" {
		var (
			st  pathStep
			err error
		)
		switch s[0] {
		case '.':
			st, s, err = parseField(s[1:])
		case '[':
			st, s, err = parseBracket(s[1:])
		default:
			err = fmt.Errorf("unexpected %q; write fields as .name and indexes as [0]", s[0])
		}
		if err != nil {
			return p, fmt.Errorf("jsonPath %q: %w", text, err)
		}
		p.steps = append(p.steps, st)
	}
	return p, nil
}

// parseField reads a field name up to the next "." or "[".
func parseField(s string) (pathStep, string, error) {
	end := strings.IndexAny(s, ".[")
	if end < 0 {
		end = len(s)
	}
	name := s[:end]
	switch {
	case name == "" && strings.HasPrefix(s, "."):
		return pathStep{}, "", errors.New("recursive descent (..) selects several values; name each field")
	case name == "":
		return pathStep{}, "", errors.New("empty field name")
	case strings.ContainsAny(name, "*?@()]{}, '\""):
		return pathStep{}, "", fmt.Errorf("field %q: wildcards and filters are not supported; use ['...'] for unusual names", name)
	}
	return pathStep{key: name}, s[end:], nil
}

// parseBracket reads ['name'], ["name"] or [index], the "[" already read.
func parseBracket(s string) (pathStep, string, error) {
	if s != "" && (s[0] == '\'' || s[0] == '"') {
		q := s[0]
		end := strings.IndexByte(s[1:], q)
		if end < 0 || !strings.HasPrefix(s[end+2:], "]") {
			return pathStep{}, "", fmt.Errorf("unterminated [%c...%c]", q, q)
		}
		return pathStep{key: s[1 : end+1]}, s[end+3:], nil
	}
	end := strings.IndexByte(s, ']')
	if end < 0 {
		return pathStep{}, "", errors.New("missing ]")
	}
	i, err := strconv.Atoi(strings.TrimSpace(s[:end]))
	if err != nil {
		return pathStep{}, "", fmt.Errorf("[%s]: only a single index such as [0] or [-1] is supported", s[:end])
	}
	return pathStep{index: i, isIndex: true}, s[end+1:], nil
}

// value selects the path's value in a document decoded with UseNumber and
// reads it as a number. A missing field, an index past the end or a null
// is no data; a value of the wrong kind is an error.
func (p jsonPath) value(doc any) (float64, error) {
	cur, where := doc, "$"
	for _, st := range p.steps {
		if cur == nil {
			return 0, fmt.Errorf("%s is null: %w", where, ErrNoData)
		}
		where += st.String()
		next, err := st.apply(cur)
		if err != nil {
			return 0, fmt.Errorf("%s %w", where, err)
		}
		cur = next
	}
	return toNumber(cur, where)
}

// String writes the step as a path segment, for messages.
func (st pathStep) String() string {
	if st.isIndex {
		return "[" + strconv.Itoa(st.index) + "]"
	}
	return "." + st.key
}

// apply takes one step into cur; a missing field or element wraps
// ErrNoData.
func (st pathStep) apply(cur any) (any, error) {
	if !st.isIndex {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("cannot be read: its parent is %s, not an object", kind(cur))
		}
		v, ok := m[st.key]
		if !ok {
			return nil, fmt.Errorf("is missing: %w", ErrNoData)
		}
		return v, nil
	}
	a, ok := cur.([]any)
	if !ok {
		return nil, fmt.Errorf("cannot be read: its parent is %s, not an array", kind(cur))
	}
	i := st.index
	if i < 0 {
		i += len(a)
	}
	if i < 0 || i >= len(a) {
		return nil, fmt.Errorf("is missing (the array has %d elements): %w", len(a), ErrNoData)
	}
	return a[i], nil
}

// kind names a decoded JSON value's type.
func kind(v any) string {
	switch v.(type) {
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case bool:
		return "a boolean"
	}
	return fmt.Sprintf("a %T", v)
}

// toNumber accepts numbers, numeric strings and booleans (true is 1).
func toNumber(v any, where string) (float64, error) {
	var x float64
	switch t := v.(type) {
	case nil:
		return 0, fmt.Errorf("%s is null: %w", where, ErrNoData)
	case json.Number:
		f, err := t.Float64()
		if err != nil {
			return 0, fmt.Errorf("%s: %q is out of range", where, t.String())
		}
		x = f
	case string:
		f, err := strconv.ParseFloat(strings.TrimSpace(t), 64)
		if err != nil {
			return 0, fmt.Errorf("%s: the string %q is not a number", where, t)
		}
		x = f
	case bool:
		if t {
			x = 1
		}
	case map[string]any:
		return 0, fmt.Errorf("%s is an object, want a number", where)
	case []any:
		return 0, fmt.Errorf("%s is an array, want a number; select one element, such as [0]", where)
	default:
		return 0, fmt.Errorf("%s has an unexpected type %T", where, v)
	}
	if math.IsNaN(x) {
		return 0, fmt.Errorf("%s is NaN: %w", where, ErrNoData)
	}
	if math.IsInf(x, 0) {
		return 0, fmt.Errorf("%s is %v", where, x)
	}
	return x, nil
}
