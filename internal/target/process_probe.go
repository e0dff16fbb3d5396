package target

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/pipit-dev/pipit/internal/rollout"
	"github.com/pipit-dev/pipit/internal/spec"
)

// portPollPeriod is how often a replica without a readiness probe is
// checked for an open port until it has one.
const portPollPeriod = 100 * time.Millisecond

// probe is a resolved ProbeSpec that can run.
type probe spec.ProbePlan

// newProbeClient returns the client probes use: no keep-alive, so every
// probe tests a fresh connection as a new request from the proxy would;
// no proxy from the environment; redirects count as answers.
func newProbeClient() *http.Client {
	return &http.Client{
		Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil},
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// check runs the probe once against the replica on port.
func (pr *probe) check(ctx context.Context, client *http.Client, port int) error {
	ctx, cancel := context.WithTimeout(ctx, pr.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+loopback(port)+pr.Path, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode >= 400 {
		return fmt.Errorf("GET %s: %s", pr.Path, resp.Status)
	}
	return nil
}

// loop runs pr until ctx ends. The verdict starts as initial; it turns
// passing after SuccessThreshold successes in a row and failing after
// FailureThreshold failures in a row. report is called on each change, and on
// each failed probe while failing so the latest error is known. It waits
// between probes on clock.
func (pr *probe) loop(ctx context.Context, clock rollout.Clock, client *http.Client, port int, initial bool, report func(passing bool, err error)) {
	if !sleepCtx(ctx, clock, pr.InitialDelay) {
		return
	}
	passing, successes, failures := initial, 0, 0
	for {
		err := pr.check(ctx, client, port)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			successes, failures = successes+1, 0
			if !passing && successes >= pr.SuccessThreshold {
				passing = true
				report(true, nil)
			}
		} else {
			successes, failures = 0, failures+1
			if passing && failures >= pr.FailureThreshold {
				passing = false
				report(false, err)
			} else if !passing {
				report(false, err)
			}
		}
		if !sleepCtx(ctx, clock, pr.Period) {
			return
		}
	}
}

// waitForPort polls until the replica's port accepts a connection,
// pausing on clock between attempts. The dial's own timeout bounds I/O.
func waitForPort(ctx context.Context, clock rollout.Clock, port int) bool {
	var d net.Dialer
	for {
		dctx, cancel := context.WithTimeout(ctx, time.Second)
		c, err := d.DialContext(dctx, "tcp", loopback(port))
		cancel()
		if err == nil {
			_ = c.Close()
			return true
		}
		if !sleepCtx(ctx, clock, portPollPeriod) {
			return false
		}
	}
}

// sleepCtx waits d on clock and reports false if ctx ended first.
func sleepCtx(ctx context.Context, clock rollout.Clock, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	return rollout.Sleep(ctx, clock, d) == nil
}

func loopback(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }
