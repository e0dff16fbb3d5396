package spec

import (
	"strings"
	"testing"
	"time"
)

func TestValidate(t *testing.T) {
	ok := LoadSettings{URL: "http://127.0.0.1:8080/", Rate: 10, Duration: time.Second}
	tests := []struct {
		name   string
		change func(*LoadSettings)
		want   string // substring of the error; "" means valid
	}{
		{"valid", func(*LoadSettings) {}, ""},
		{"https with method and headers", func(c *LoadSettings) {
			c.URL, c.Method, c.Headers = "https://127.0.0.1/x", "POST", map[string][]string{"Host": {"app.example"}}
		}, ""},
		{"no url", func(c *LoadSettings) { c.URL = "" }, "url is required"},
		{"relative url", func(c *LoadSettings) { c.URL = "/health" }, "absolute"},
		{"other scheme", func(c *LoadSettings) { c.URL = "ftp://127.0.0.1/" }, "http or https"},
		{"unparsable url", func(c *LoadSettings) { c.URL = "http://[::1" }, "url"},
		{"zero rate", func(c *LoadSettings) { c.Rate = 0 }, "rate"},
		{"negative rate", func(c *LoadSettings) { c.Rate = -5 }, "rate"},
		{"zero duration", func(c *LoadSettings) { c.Duration = 0 }, "duration"},
		{"negative timeout", func(c *LoadSettings) { c.Timeout = -time.Second }, "timeout"},
		{"bad method", func(c *LoadSettings) { c.Method = "GE T" }, "method"},
		{"bad header name", func(c *LoadSettings) { c.Headers = map[string][]string{"X Bad": {"1"}} }, "header name"},
		{"bad header value", func(c *LoadSettings) { c.Headers = map[string][]string{"X-Ok": {"a\nb"}} }, "header X-Ok"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := ok
			tt.change(&cfg)
			err := cfg.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate() = %v, want an error mentioning %q", err, tt.want)
			}
		})
	}
}
