package sampleapp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// shutdownGrace bounds how long Serve waits for requests in flight once ctx
// is done; after it, the remaining connections are closed.
const shutdownGrace = 10 * time.Second

// Serve listens on listen (":0" picks a free port), calls ready with the
// bound address once connections are accepted, and serves Handler(cfg) until
// ctx is done. It then stops accepting, lets requests in flight finish for a
// short grace period and returns nil. ready may be nil.
func Serve(ctx context.Context, listen string, cfg Config, ready func(addr string)) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", listen)
	if err != nil {
		return fmt.Errorf("sampleapp: listen on %s: %w", listen, err)
	}
	srv := &http.Server{
		Handler:           Handler(cfg),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	addr := ln.Addr().String()
	log.Debug("sample app listening", "addr", addr, "version", cfg.Version)
	if ready != nil {
		ready(addr)
	}

	select {
	case err := <-served:
		return fmt.Errorf("sampleapp: serve on %s: %w", addr, err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		log.Warn("sample app: requests still in flight after the grace period; closing them", "err", err)
		_ = srv.Close()
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("sampleapp: serve on %s: %w", addr, err)
	}
	return nil
}
