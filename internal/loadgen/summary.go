package loadgen

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// Summary is what a run observed. Durations encode to JSON as integer
// nanoseconds.
type Summary struct {
	// Requests is how many requests were sent and answered or failed.
	Requests uint64 `json:"requests"`
	// Rate is the number of requests sent per second.
	Rate float64 `json:"rate"`
	// Throughput is the number of successful requests per second.
	Throughput float64 `json:"throughput"`
	// Success is the share of requests answered with a 2xx or 3xx status, 0..1.
	Success float64 `json:"success"`
	// StatusCodes counts answers by status code; "0" counts requests that
	// got no answer at all (refused, timed out, reset).
	StatusCodes map[string]int `json:"statusCodes"`
	// Latencies describes how long requests took, failed ones included.
	Latencies Latencies `json:"latencies"`
	// Errors lists distinct error messages in the order first seen, at most
	// ten of them.
	Errors []string `json:"errors"`
}

// Latencies are request durations: their mean, percentiles and maximum.
type Latencies struct {
	Mean time.Duration `json:"mean"`
	P50  time.Duration `json:"p50"`
	P90  time.Duration `json:"p90"`
	P95  time.Duration `json:"p95"`
	P99  time.Duration `json:"p99"`
	Max  time.Duration `json:"max"`
}

// Answered reports how many requests got an HTTP answer, whatever its status.
func (s Summary) Answered() uint64 {
	return s.Requests - uint64(s.StatusCodes["0"])
}

// Print writes the summary as a small aligned table.
func (s Summary) Print(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "Requests\t%d\n", s.Requests)
	fmt.Fprintf(tw, "Rate\t%.1f/s sent, %.1f/s succeeded\n", s.Rate, s.Throughput)
	fmt.Fprintf(tw, "Success\t%.2f%%\n", 100*s.Success)
	fmt.Fprintf(tw, "Status codes\t%s\n", s.statusLine())
	l := s.Latencies
	fmt.Fprintf(tw, "Latency\tmean %s, p50 %s, p90 %s, p95 %s, p99 %s, max %s\n",
		short(l.Mean), short(l.P50), short(l.P90), short(l.P95), short(l.P99), short(l.Max))
	for i, e := range s.Errors {
		label := ""
		if i == 0 {
			label = "Errors"
		}
		fmt.Fprintf(tw, "%s\t%s\n", label, e)
	}
	tw.Flush()
}

// statusLine lists status codes in numeric order, "0" meaning no answer.
func (s Summary) statusLine() string {
	if len(s.StatusCodes) == 0 {
		return "none"
	}
	codes := make([]string, 0, len(s.StatusCodes))
	for c := range s.StatusCodes {
		codes = append(codes, c)
	}
	slices.SortFunc(codes, func(a, b string) int {
		x, _ := strconv.Atoi(a)
		y, _ := strconv.Atoi(b)
		return x - y
	})
	parts := make([]string, len(codes))
	for i, c := range codes {
		label := c
		if c == "0" {
			label = "no answer"
		}
		parts[i] = fmt.Sprintf("%s: %d", label, s.StatusCodes[c])
	}
	return strings.Join(parts, ", ")
}

// short rounds a duration to three significant-ish digits for display.
func short(d time.Duration) string {
	switch {
	case d >= time.Second:
		return d.Round(time.Millisecond).String()
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond).String()
	default:
		return d.Round(time.Microsecond).String()
	}
}

// accumulator folds vegeta results into a Summary. It keeps its own bounded
// set of errors and hands vegeta results without error text, because
// vegeta's metrics remember every distinct message.
type accumulator struct {
	metrics vegeta.Metrics
	errors  []string
}

func (a *accumulator) add(r *vegeta.Result) {
	if r.Error != "" {
		if len(a.errors) < maxErrors && !slices.Contains(a.errors, r.Error) {
			a.errors = append(a.errors, r.Error)
		}
		r.Error = ""
	}
	a.metrics.Add(r)
}

func (a *accumulator) summary() Summary {
	m := &a.metrics
	m.Close()
	errs := a.errors
	if errs == nil {
		errs = []string{}
	}
	return Summary{
		Requests:    m.Requests,
		Rate:        m.Rate,
		Throughput:  m.Throughput,
		Success:     m.Success,
		StatusCodes: m.StatusCodes,
		Latencies: Latencies{
			Mean: m.Latencies.Mean,
			P50:  m.Latencies.P50,
			P90:  m.Latencies.P90,
			P95:  m.Latencies.P95,
			P99:  m.Latencies.P99,
			Max:  m.Latencies.Max,
		},
		Errors: errs,
	}
}
