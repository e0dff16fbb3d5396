// Package ofreptest simulates the users of an application that evaluates
// a flag over OFREP for each of their requests and reports each
// request's outcome to pipit, for tests of flag rollouts.
package ofreptest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"
)

// requestTimeout bounds each request to pipit.
const requestTimeout = 10 * time.Second

// Answer is the part of an OFREP answer the tests look at.
type Answer struct {
	Variant   string `json:"variant"`
	Reason    string `json:"reason"`
	ErrorCode string `json:"errorCode"`
	// Value is the variant's value, as JSON.
	Value json.RawMessage `json:"value"`
}

// Users are N users, user-0 to user-N-1, of an application that reads
// flag Key from the OFREP listener at Addr with Token.
type Users struct {
	Addr, Token, Key string
	N                int
	// RolledOut is the variant being rolled out.
	RolledOut string
	// Fails makes the requests of the users who have RolledOut fail.
	Fails bool
	// Converts maps a variant to the percentage of its users who reach
	// the goal Goal (user i converts when i%100 is below it), reported as
	// a conversion event in each round.
	Converts map[string]int
	// Goal is the goal the converting users reach.
	Goal string

	mu   sync.Mutex
	had  map[int]string // the variant each user had last
	lost int
}

// Event is one request's outcome, as the events endpoint takes it.
type Event struct {
	TargetingKey string  `json:"targetingKey"`
	Kind         string  `json:"kind"`
	LatencyMs    float64 `json:"latencyMs,omitempty"`
	Goal         string  `json:"goal,omitempty"`
}

// post sends body as JSON to path and returns the answer's status and
// body.
func (u *Users) post(path string, body any) (int, []byte, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return 0, nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+u.Addr+path, bytes.NewReader(b))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+u.Token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	return resp.StatusCode, out, err
}

// Evaluate asks for user i's variant.
func (u *Users) Evaluate(i int) (Answer, error) {
	_, body, err := u.post("/ofrep/v1/evaluate/flags/"+u.Key, map[string]any{"context": map[string]any{"targetingKey": userKey(i)}})
	if err != nil {
		return Answer{}, err
	}
	var a Answer
	if err := json.Unmarshal(body, &a); err != nil {
		return Answer{}, fmt.Errorf("OFREP answered %s: %w", body, err)
	}
	return a, nil
}

func userKey(i int) string { return fmt.Sprint("user-", i) }

// Round has every user make one request and reports the outcomes; it
// returns how many users had each variant.
func (u *Users) Round() (map[string]int, error) {
	variants := map[string]int{}
	events := make([]Event, 0, u.N)
	for i := range u.N {
		a, err := u.Evaluate(i)
		if err != nil {
			return nil, err
		}
		if a.ErrorCode != "" {
			return nil, fmt.Errorf("user %d: %s", i, a.ErrorCode)
		}
		variants[a.Variant]++
		kind := "success"
		if a.Variant == u.RolledOut && u.Fails {
			kind = "error"
		}
		u.note(i, a)
		events = append(events, Event{TargetingKey: userKey(i), Kind: kind, LatencyMs: 12})
		if i%100 < u.Converts[a.Variant] {
			events = append(events, Event{TargetingKey: userKey(i), Kind: "conversion", Goal: u.Goal})
		}
	}
	status, body, err := u.post("/v1/flags/"+u.Key+"/events", map[string]any{"events": events})
	if err == nil && status != http.StatusAccepted {
		err = fmt.Errorf("events: %d %s", status, body)
	}
	return variants, err
}

// note remembers a's variant for user i, counting a user who lost the
// variant rolled out while the flag was split.
func (u *Users) note(i int, a Answer) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.had == nil {
		u.had = map[int]string{}
	}
	if prev := u.had[i]; prev == u.RolledOut && a.Variant != prev && a.Reason == "SPLIT" {
		u.lost++
	}
	u.had[i] = a.Variant
}

// Lost is how many times a user lost the variant rolled out while the
// flag was split: never, when raising the weight only adds users.
func (u *Users) Lost() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.lost
}

// Run makes rounds every interval until ctx ends, and returns the first
// error and a wait for the end.
func (u *Users) Run(ctx context.Context, interval time.Duration) (wait func() error) {
	done := make(chan error, 1)
	go func() {
		for {
			select {
			case <-ctx.Done():
				done <- nil
				return
			case <-time.After(interval):
			}
			if _, err := u.Round(); err != nil && ctx.Err() == nil {
				done <- err
				return
			}
		}
	}()
	return func() error { return <-done }
}
