package loadconfig

import (
	"strings"
	"testing"
	"time"
)

func TestValidate(t *testing.T) {
	ok := Settings{URL: "http://127.0.0.1:8080/", Rate: 10, Duration: time.Second}
	tests := []struct {
		name   string
		change func(*Settings)
		want   string // substring of the error; "" means valid
	}{
		{"valid", func(*Settings) {}, ""},
		{"https with method and headers", func(c *Settings) {
			c.URL, c.Method, c.Headers = "https://127.0.0.1/x", "POST", map[string][]string{"Host": {"app.example"}}
		}, ""},
		{"no url", func(c *Settings) { c.URL = "" }, "url is required"},
		{"relative url", func(c *Settings) { c.URL = "/health" }, "absolute"},
		{"other scheme", func(c *Settings) { c.URL = "ftp://127.0.0.1/" }, "http or https"},
		{"unparsable url", func(c *Settings) { c.URL = "http://[::1" }, "url"},
		{"zero rate", func(c *Settings) { c.Rate = 0 }, "rate"},
		{"negative rate", func(c *Settings) { c.Rate = -5 }, "rate"},
		{"zero duration", func(c *Settings) { c.Duration = 0 }, "duration"},
		{"negative timeout", func(c *Settings) { c.Timeout = -time.Second }, "timeout"},
		{"bad method", func(c *Settings) { c.Method = "GE T" }, "method"},
		{"bad header name", func(c *Settings) { c.Headers = map[string][]string{"X Bad": {"1"}} }, "header name"},
		{"bad header value", func(c *Settings) { c.Headers = map[string][]string{"X-Ok": {"a\nb"}} }, "header X-Ok"},
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
