package loadgen

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"
)

// DefaultUserHeader carries a simulated user's key when
// UsersConfig.UserHeader is empty: the header an experiment's
// spec.service.traffic.userKey reads.
const DefaultUserHeader = "X-User-ID"

// maxUsersInFlight bounds the simulated users visiting at once, so that a
// slow target does not pile up goroutines.
const maxUsersInFlight = 64

// UsersConfig describes simulated users: each is a new user, with a key of
// its own sent on each of its requests (so that a proxy splitting users
// by key keeps it on one version), who opens the page at URL and follows
// where the page leads (the sample app's "next", its goal), as a shop's
// visitors who buy or not.
type UsersConfig struct {
	// URL is the absolute http address of the page users open.
	URL string
	// Rate is the number of new users a second.
	Rate int
	// Duration is how long new users keep coming; cancelling the context
	// passed to RunUsers ends the run earlier.
	Duration time.Duration
	// UserHeader is the header carrying each user's key; empty means
	// DefaultUserHeader.
	UserHeader string
	// Timeout bounds each request; zero means DefaultTimeout.
	Timeout time.Duration
}

// UsersSummary counts the simulated users by the version that answered
// their first request.
type UsersSummary struct {
	// Visitors and Converted count, per version, the users who opened the
	// page and those who then reached the goal.
	Visitors, Converted map[string]int
	// Failed counts users whose requests failed or were refused.
	Failed int
}

// page is the part of a sample app's answer the users read.
type page struct {
	Version string `json:"version"`
	Next    string `json:"next"`
}

// RunUsers sends new users as cfg describes until cfg.Duration passed or
// ctx is cancelled, waits for those visiting and returns their summary.
// It fails only on an invalid cfg.
func RunUsers(ctx context.Context, cfg UsersConfig) (UsersSummary, error) {
	if err := (Config{URL: cfg.URL, Rate: cfg.Rate, Duration: cfg.Duration, Timeout: cfg.Timeout}).Validate(); err != nil {
		return UsersSummary{}, err
	}
	if cfg.UserHeader == "" {
		cfg.UserHeader = DefaultUserHeader
	}
	timeout := cfg.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	client := newClient(ctx, timeout)
	defer client.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(ctx, cfg.Duration)
	defer cancel()

	s := &userTally{sum: UsersSummary{Visitors: map[string]int{}, Converted: map[string]int{}}}
	run := strconv.FormatUint(rand.Uint64(), 36) // keys of one run differ from another's
	slots := make(chan struct{}, maxUsersInFlight)
	var wg sync.WaitGroup
	tick := time.NewTicker(time.Second / time.Duration(cfg.Rate))
	defer tick.Stop()
	for n := 0; ; n++ {
		select {
		case <-ctx.Done():
			wg.Wait()
			return s.sum, nil
		case <-tick.C:
		}
		select {
		case slots <- struct{}{}:
		default:
			s.fail() // too many users in flight: this one gives up
			continue
		}
		wg.Go(func() {
			defer func() { <-slots }()
			s.visit(ctx, client, cfg, run+"-"+strconv.Itoa(n))
		})
	}
}

// userTally adds up the users' outcomes from their goroutines.
type userTally struct {
	mu  sync.Mutex
	sum UsersSummary
}

func (s *userTally) fail() {
	s.mu.Lock()
	s.sum.Failed++
	s.mu.Unlock()
}

// visit plays one user: open the page, then follow its lead to the goal.
func (s *userTally) visit(ctx context.Context, client *http.Client, cfg UsersConfig, key string) {
	var p page
	if err := userRequest(ctx, client, http.MethodGet, cfg.URL, cfg.UserHeader, key, &p); err != nil || p.Version == "" {
		if ctx.Err() == nil {
			s.fail()
		}
		return
	}
	converted := false
	if p.Next != "" {
		if goal, err := url.Parse(cfg.URL); err == nil {
			goal = goal.ResolveReference(&url.URL{Path: p.Next})
			converted = userRequest(ctx, client, http.MethodPost, goal.String(), cfg.UserHeader, key, nil) == nil
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sum.Visitors[p.Version]++
	if converted {
		s.sum.Converted[p.Version]++
	}
}

// userRequest sends one request of the user key and decodes a JSON answer
// into into, when it is not nil; an answer other than 2xx is an error.
func userRequest(ctx context.Context, client *http.Client, method, target, header, key string, into any) error {
	req, err := http.NewRequestWithContext(ctx, method, target, nil)
	if err != nil {
		return err
	}
	req.Header.Set(header, key)
	res, err := client.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode/100 != 2 {
		_, _ = io.Copy(io.Discard, res.Body)
		return fmt.Errorf("%s %s: %s", method, target, res.Status)
	}
	if into == nil {
		_, err = io.Copy(io.Discard, res.Body)
		return err
	}
	return json.NewDecoder(res.Body).Decode(into)
}
