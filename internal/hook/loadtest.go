package hook

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/loadgen"
)

// runLoadTest runs the built-in load test once. It answers yes when at
// least one request got an HTTP answer, whatever its status: judging the
// answers is the analysis' job, the hook only makes sure there is traffic.
func runLoadTest(ctx context.Context, lt v1alpha1.LoadTestHook, timeout time.Duration) Result {
	cfg := loadConfig(lt, timeout)
	// The requests still in flight at the end get their own timeout to
	// answer; nothing may hold the hook longer.
	ctx, cancel := context.WithTimeout(ctx, cfg.Duration+timeout)
	defer cancel()
	sum, err := loadgen.Run(ctx, cfg)
	if err != nil {
		return Result{Attempts: 1, Err: fmt.Errorf("load test: %w", err)}
	}
	res := Result{Attempts: 1, Message: bound(describe(sum)), OK: sum.Answered() > 0}
	if !res.OK {
		reason := "no request was sent"
		if len(sum.Errors) > 0 {
			reason = sum.Errors[0]
		}
		res.Err = errors.New("load test: no request got an answer: " + reason)
	}
	return res
}

// describe is the one-line summary of a load test.
func describe(s loadgen.Summary) string {
	return fmt.Sprintf("%d requests, %.2f%% success, p99 %s",
		s.Requests, 100*s.Success, s.Latencies.P99.Round(time.Microsecond))
}

// loadConfig turns a load-test hook into the load generator's config.
func loadConfig(lt v1alpha1.LoadTestHook, timeout time.Duration) loadgen.Config {
	var d time.Duration
	if lt.Duration != nil {
		d = lt.Duration.Duration
	}
	var h http.Header
	if len(lt.Headers) > 0 {
		h = make(http.Header, len(lt.Headers))
		for k, v := range lt.Headers {
			h.Set(k, v)
		}
	}
	return loadgen.Config{
		URL:      lt.URL,
		Method:   lt.Method,
		Rate:     int(lt.Rate),
		Duration: d,
		Headers:  h,
		Timeout:  timeout,
	}
}
