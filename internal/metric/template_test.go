package metric

import (
	"strings"
	"testing"
	"time"
)

func TestRender(t *testing.T) {
	q := Query{
		Rollout: "shop", Namespace: "prod", Version: "v2", Role: "canary",
		Interval: time.Minute, Vars: map[string]string{"job": "api"},
		Args: map[string]string{"service": "checkout"},
	}
	cases := []struct {
		name, text, want, err string
		interval              time.Duration
	}{
		{name: "every field", text: `{{ .Rollout }}/{{ .Namespace }}/{{ .Version }}/{{ .Role }}/{{ .Interval }}/{{ .Vars.job }}`, want: "shop/prod/v2/canary/60s/api"},
		{name: "a flag's variant", text: `errors_total{variant="{{ .Variant }}"}`, want: `errors_total{variant="v2"}`},
		{name: "whole seconds", text: `{{ .Interval }}`, interval: 90 * time.Second, want: "90s"},
		{name: "milliseconds", text: `{{ .Interval }}`, interval: 1500 * time.Millisecond, want: "1500ms"},
		{name: "url escaping is available", text: `{{ .Vars.job | urlquery }}`, want: "api"},
		{name: "a template's argument", text: `{{ .Args.service }}/{{ .Vars.job }}`, want: "checkout/api"},
		{name: "missing variable", text: `{{ .Vars.nope }}`, err: `map has no entry for key "nope"`},
		{name: "missing argument", text: `{{ .Args.nope }}`, err: `map has no entry for key "nope"`},
		{name: "unknown field", text: `{{ .Service }}`, err: "can't evaluate field Service"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tmpl, err := parseTemplate("query", c.text)
			if err != nil {
				t.Fatal(err)
			}
			qq := q
			if c.interval != 0 {
				qq.Interval = c.interval
			}
			got, err := render(tmpl, qq)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("got %q, %v; want an error containing %q", got, err, c.err)
				}
				return
			}
			if err != nil || got != c.want {
				t.Fatalf("got %q, %v; want %q", got, err, c.want)
			}
		})
	}
}

func TestRenderWithoutVars(t *testing.T) {
	tmpl, err := parseTemplate("query", `{{ .Vars.job }}`)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := render(tmpl, Query{}); err == nil {
		t.Fatal("a variable missing from nil Vars rendered without error")
	}
}

func TestParseTemplateError(t *testing.T) {
	_, err := parseTemplate("query", `sum({{ .Version )`)
	if err == nil || !strings.Contains(err.Error(), "parsing query template") {
		t.Fatalf("got %v, want a parse error naming the template", err)
	}
}
