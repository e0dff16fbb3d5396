package spec

// The rules a load run's settings must follow live here, with the rest of
// validation, so that a loadTest hook is checked by the very rules the load
// generator (internal/loadgen, an HTTP client that spec must not import)
// enforces when it runs.

import (
	"errors"
	"fmt"
	"net/url"
	"time"

	"golang.org/x/net/http/httpguts"
)

// LoadSettings is what a load run is asked to do, in plain values; see
// loadgen.Config for what each field means.
type LoadSettings struct {
	URL      string
	Method   string
	Rate     int
	Duration time.Duration
	Timeout  time.Duration
	Headers  map[string][]string
}

// Validate reports the first setting that cannot work.
func (s LoadSettings) Validate() error {
	if s.URL == "" {
		return errors.New("url is required")
	}
	u, err := url.Parse(s.URL)
	if err != nil {
		return fmt.Errorf("url: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("url %q must be absolute, with an http or https scheme and a host", s.URL)
	}
	if s.Method != "" && !httpguts.ValidHeaderFieldName(s.Method) { // methods are tokens, like header names
		return fmt.Errorf("invalid method %q", s.Method)
	}
	if s.Rate <= 0 {
		return fmt.Errorf("rate must be a positive number of requests per second, got %d", s.Rate)
	}
	if s.Duration <= 0 {
		return fmt.Errorf("duration must be positive, got %v", s.Duration)
	}
	if s.Timeout < 0 {
		return fmt.Errorf("timeout must not be negative, got %v", s.Timeout)
	}
	for name, values := range s.Headers {
		if !httpguts.ValidHeaderFieldName(name) {
			return fmt.Errorf("invalid header name %q", name)
		}
		for _, v := range values {
			if !httpguts.ValidHeaderFieldValue(v) {
				return fmt.Errorf("invalid value for header %s", name)
			}
		}
	}
	return nil
}
