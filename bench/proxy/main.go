// Command proxy-bench-harness runs pipit's built-in proxy the way a
// rollout does, on the same code path (proxy.Server in front of a
// proxy.Proxy), with a fixed canary weight, for bench/proxy.sh.
//
//	go run ./bench/proxy -listen 127.0.0.1:8080 -stable http://127.0.0.1:9001 -canary http://127.0.0.1:9002 -weight 5
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/pipit-dev/pipit/api/v1alpha1"
	"github.com/pipit-dev/pipit/internal/proxy"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "proxy-bench-harness:", err)
		os.Exit(1)
	}
}

func run() error {
	listen := flag.String("listen", "127.0.0.1:8080", "address to listen on")
	stable := flag.String("stable", "", "stable upstream URL")
	canary := flag.String("canary", "", "canary upstream URL")
	weight := flag.Float64("weight", 5, "canary weight in percent")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	flag.Parse()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	su, err := url.Parse(*stable)
	if err != nil || su.Host == "" {
		return fmt.Errorf("-stable %q: want a URL", *stable)
	}
	cu, err := url.Parse(*canary)
	if err != nil || cu.Host == "" {
		return fmt.Errorf("-canary %q: want a URL", *canary)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	p, err := proxy.New(proxy.Config{
		Stable:        proxy.Upstream{Version: "stable", URL: su},
		Canary:        &proxy.Upstream{Version: "canary", URL: cu},
		Weight:        v1alpha1.Percent(*weight * float64(v1alpha1.PercentScale)),
		VersionHeader: proxy.DefaultVersionHeader,
		Logger:        log,
	})
	if err != nil {
		return err
	}
	srv, err := proxy.NewServer(p, proxy.ServerConfig{Logger: log})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	fmt.Printf("proxy-bench-harness listening on %s\n", ln.Addr())
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
