// Package sampleapp is the small HTTP service that tutorials, tests and the
// demo roll out: it reports its version and can be told to be slow or to fail
// a share of its requests, so that a canary has something real to judge, and
// to lead a share of its visitors to a goal, so that an experiment has
// conversions to count.
package sampleapp

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/pipit-dev/pipit/internal/rollout"
)

// Config says which version the service reports and which faults it injects
// into requests to "/".
type Config struct {
	// Version is reported by "/" and "/version"; it tells the canary from the
	// stable version.
	Version string
	// ErrorRate is the share of requests to "/" answered with HTTP 500, from 0 to 1.
	ErrorRate float64
	// Latency is the mean delay added before answering "/".
	Latency time.Duration
	// LatencyJitter spreads the delay uniformly over Latency ± LatencyJitter;
	// a delay below zero counts as none.
	LatencyJitter time.Duration
	// ConversionRate is the share of answers of "/" that lead the visitor
	// to the goal (their "next" is GoalPath), from 0 to 1: how well this
	// version sells, for simulated users who follow the lead.
	ConversionRate float64
	// Clock times the injected delays; nil is the wall clock.
	Clock rollout.Clock
	// Log receives Serve's diagnostics; nil discards them.
	Log *slog.Logger
}

// Validate reports the first setting that is out of range.
func (c Config) Validate() error {
	switch {
	case c.Version == "":
		return errors.New("sampleapp: version must not be empty")
	case !(c.ErrorRate >= 0 && c.ErrorRate <= 1): // also refuses NaN
		return fmt.Errorf("sampleapp: error rate must be between 0 and 1, got %v", c.ErrorRate)
	case !(c.ConversionRate >= 0 && c.ConversionRate <= 1):
		return fmt.Errorf("sampleapp: conversion rate must be between 0 and 1, got %v", c.ConversionRate)
	case c.Latency < 0:
		return fmt.Errorf("sampleapp: latency must not be negative, got %v", c.Latency)
	case c.LatencyJitter < 0:
		return fmt.Errorf("sampleapp: latency jitter must not be negative, got %v", c.LatencyJitter)
	}
	return nil
}

// Handler returns the service's routes:
//
//	/          JSON {"version": ..., "hostname": ..., "next": ...}, with the
//	           configured faults; next is GoalPath for ConversionRate of them
//	/health    200 "ok", never faulty, so that it reports liveness only
//	/version   the version as plain text, never faulty
//	/checkout  POST: the goal a visitor led to it reaches, never faulty
//
// Handler panics if cfg is invalid, as that is a programming error; check
// settings that come from users with Config.Validate first.
func Handler(cfg Config) http.Handler {
	if err := cfg.Validate(); err != nil {
		panic(err)
	}
	host, err := os.Hostname()
	if err != nil {
		host = "unknown"
	}
	a := &app{cfg: cfg, hostname: host, faults: newFaults(cfg)}
	mux := http.NewServeMux()
	mux.HandleFunc("/{$}", a.root)
	mux.HandleFunc("GET /health", health)
	mux.HandleFunc("GET /version", a.version)
	mux.HandleFunc("POST "+GoalPath, a.version)
	return mux
}

// GoalPath is the goal the sample app leads a share of its visitors to:
// an experiment's goal is {path: {exact: /checkout}, method: {exact: POST}}.
const GoalPath = "/checkout"

// app holds what the routes share.
type app struct {
	cfg      Config
	hostname string
	faults   *faults
}

// info is the body of "/".
type info struct {
	Version  string `json:"version"`
	Hostname string `json:"hostname"`
	// Next is where the page leads the visitor: GoalPath, or empty.
	Next string `json:"next,omitempty"`
}

func (a *app) root(w http.ResponseWriter, r *http.Request) {
	delay, fail, convert := a.faults.draw()
	if delay > 0 {
		if rollout.Sleep(r.Context(), rollout.ClockOrSystem(a.cfg.Clock), delay) != nil {
			return // the client has gone; nobody reads the answer
		}
	}
	if fail {
		http.Error(w, "injected failure", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	body := info{Version: a.cfg.Version, Hostname: a.hostname}
	if convert {
		body.Next = GoalPath
	}
	_ = json.NewEncoder(w).Encode(body)
}

func (a *app) version(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintln(w, a.cfg.Version)
}

func health(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintln(w, "ok")
}

// faults draws each request's delay and outcome. Every handler has its own
// random source, guarded by a mutex because requests are served concurrently.
type faults struct {
	errorRate      float64
	conversionRate float64
	latency        time.Duration
	jitter         time.Duration
	mu             sync.Mutex
	rng            *rand.Rand
}

func newFaults(cfg Config) *faults {
	return &faults{
		errorRate:      cfg.ErrorRate,
		conversionRate: cfg.ConversionRate,
		latency:        cfg.Latency,
		jitter:         cfg.LatencyJitter,
		rng:            rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())),
	}
}

// draw returns how long to wait before answering, whether to answer 500
// and whether to lead the visitor to the goal.
func (f *faults) draw() (delay time.Duration, fail, convert bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delay = f.latency
	if f.jitter > 0 {
		// Uniform over [latency-jitter, latency+jitter].
		delay += time.Duration(f.rng.Int64N(int64(2*f.jitter)+1)) - f.jitter
	}
	return max(delay, 0), f.rng.Float64() < f.errorRate, f.rng.Float64() < f.conversionRate
}
