package metric

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

const jsonDoc = `{
  "data": {"rate": 0.25, "count": "42", "ok": true, "bad": false, "none": null,
           "text": "high", "big": 1e999, "nan": "NaN", "obj": {}},
  "items": [{"value": 1.5}, {"value": -2}, {"value": 7}],
  "a.b": {"c-d": 3},
  "n": 12
}`

func decodeDoc(t *testing.T, s string) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader([]byte(s)))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

// checkOutcome fails the test unless got and err are the outcome a case
// wants: with noData an error that wraps ErrNoData, with errText another
// error containing it, else want and no error. The two errors are kept
// apart because an answer without a value is not a failed query.
func checkOutcome(t *testing.T, got float64, err error, want float64, noData bool, errText string) {
	t.Helper()
	switch {
	case noData:
		if !errors.Is(err, ErrNoData) {
			t.Fatalf("got %v, %v; want ErrNoData", got, err)
		}
	case errText != "":
		if err == nil || errors.Is(err, ErrNoData) || !strings.Contains(err.Error(), errText) {
			t.Fatalf("got %v, %v; want an error containing %q", got, err, errText)
		}
	default:
		if err != nil || got != want {
			t.Fatalf("got %v, %v; want %v", got, err, want)
		}
	}
}

func TestJSONPathValue(t *testing.T) {
	doc := decodeDoc(t, jsonDoc)
	cases := []struct {
		path string
		want float64
		// noData: the error wraps ErrNoData; err: it is another error
		// containing this text.
		noData bool
		err    string
	}{
		{path: "{$.data.rate}", want: 0.25},
		{path: "$.data.rate", want: 0.25},
		{path: "{.data.rate}", want: 0.25},
		{path: ".data.rate", want: 0.25},
		{path: " { $.data.rate } ", want: 0.25},
		{path: "$.items[0].value", want: 1.5},
		{path: "$.items[1].value", want: -2},
		{path: "$.items[-1].value", want: 7},
		{path: "$['a.b'][\"c-d\"]", want: 3},
		{path: "$.n", want: 12},
		{path: "$.data.count", want: 42},
		{path: "$.data.ok", want: 1},
		{path: "$.data.bad", want: 0},
		{path: "$.data.none", noData: true},
		{path: "$.data.none.deeper", noData: true},
		{path: "$.data.missing", noData: true},
		{path: "$.items[3].value", noData: true},
		{path: "$.items[-4].value", noData: true},
		{path: "$.data.nan", noData: true},
		{path: "$.data.text", err: `"high" is not a number`},
		{path: "$.data.big", err: "out of range"},
		{path: "$.data.obj", err: "is an object"},
		{path: "$.items", err: "is an array"},
		{path: "$.data[0]", err: "not an array"},
		{path: "$.items.value", err: "not an object"},
	}
	for _, c := range cases {
		t.Run(c.path, func(t *testing.T) {
			p, err := parseJSONPath(c.path)
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			got, err := p.value(doc)
			checkOutcome(t, got, err, c.want, c.noData, c.err)
		})
	}
}

func TestJSONPathRoot(t *testing.T) {
	p, err := parseJSONPath("$")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := p.value(decodeDoc(t, "3.5")); err != nil || got != 3.5 {
		t.Fatalf("got %v, %v; want 3.5", got, err)
	}
}

func TestJSONPathParseErrors(t *testing.T) {
	cases := map[string]string{
		"":                               "empty",
		"{}":                             "empty",
		"{$.a":                           "missing closing }",
		"$..a":                           "recursive descent",
		"$.items[*].value":               "only a single index",
		"$.items[0:2]":                   "only a single index",
		"$.items[?(@.v>1)]":              "only a single index",
		"$.a.*":                          "wildcards",
		"$.a.":                           "empty field name",
		"$['a":                           "unterminated",
		"$.items[0":                      "missing ]",
		"data.rate":                      "unexpected",
		"$.a[0]x":                        "unexpected",
		"{range .items[*]}{.value}{end}": "unexpected",
	}
	for path, want := range cases {
		t.Run(path, func(t *testing.T) {
			_, err := parseJSONPath(path)
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("got %v, want an error containing %q", err, want)
			}
		})
	}
}
