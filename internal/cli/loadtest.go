package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/textproto"
	"strings"

	"github.com/spf13/cobra"

	"github.com/pipit-dev/pipit/internal/loadgen"
)

func init() { register(newLoadtestCmd) }

func newLoadtestCmd(*globals) *cobra.Command {
	var (
		cfg     loadgen.Config
		headers []string
		output  string
	)
	cmd := &cobra.Command{
		Use:   "loadtest",
		Short: "Send requests at a steady rate and summarise the answers",
		Long: `loadtest sends one request to --url, --rate times a second, for --duration, then
prints how many succeeded, the status codes and the latency percentiles.
Interrupting it (SIGINT or SIGTERM) stops early and prints what it saw so far.

It exits 1, naming the reason, when no request got any answer (for example
when the connection is refused); answers with error statuses are counted,
not treated as a failure of the load test itself.`,
		Example: `  # 50 requests a second for 30 seconds
  pipit loadtest --url http://127.0.0.1:8080/ --rate 50 --duration 30s

  # address a host-routed service through the proxy, with JSON output
  pipit loadtest --url http://127.0.0.1:8080/ --rate 20 --duration 10s --header 'Host: app.example' -o json`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "text" && output != "json" {
				return BadInputf("--output %q: want text or json", output)
			}
			h, err := parseHeaders(headers)
			if err != nil {
				return BadInput(err)
			}
			cfg.Headers = h
			if err := cfg.Validate(); err != nil {
				return BadInput(err)
			}
			s, err := loadgen.Run(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			if err := printSummary(cmd, s, output); err != nil {
				return err
			}
			return unanswered(s)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.URL, "url", "", "absolute http or https URL to request (required)")
	f.IntVar(&cfg.Rate, "rate", 0, "requests per second (required)")
	f.DurationVar(&cfg.Duration, "duration", 0, "how long to send requests, e.g. 30s (required)")
	f.StringVar(&cfg.Method, "method", http.MethodGet, "HTTP method")
	f.DurationVar(&cfg.Timeout, "timeout", loadgen.DefaultTimeout, "timeout of each request")
	f.StringArrayVar(&headers, "header", nil, "header to send, 'Name: value' (repeatable)")
	f.StringVarP(&output, "output", "o", "text", "output format: text or json")
	return cmd
}

// parseHeaders turns repeated "Name: value" flags into a header set.
func parseHeaders(flags []string) (http.Header, error) {
	if len(flags) == 0 {
		return nil, nil
	}
	h := http.Header{}
	for _, kv := range flags {
		name, value, ok := strings.Cut(kv, ":")
		name = strings.TrimSpace(name)
		if !ok || name == "" {
			return nil, fmt.Errorf("--header %q: want 'Name: value'", kv)
		}
		h.Add(textproto.CanonicalMIMEHeaderKey(name), strings.TrimSpace(value))
	}
	return h, nil
}

func printSummary(cmd *cobra.Command, s loadgen.Summary, output string) error {
	out := cmd.OutOrStdout()
	if output == "json" {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(s)
	}
	s.Print(out)
	return nil
}

// unanswered fails the command when no request got an answer at all, since
// the summary of such a run describes the network, not the service.
func unanswered(s loadgen.Summary) error {
	switch {
	case s.Requests == 0:
		return errors.New("no request completed before the load test was stopped")
	case s.Answered() == 0:
		reason := "no reason given"
		if len(s.Errors) > 0 {
			reason = s.Errors[0]
		}
		return fmt.Errorf("all %d requests failed without an answer: %s", s.Requests, reason)
	}
	return nil
}
