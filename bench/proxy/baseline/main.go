// Command proxy-bench-baseline is the smallest proxy that does what
// bench/proxy.sh asks of every proxy it measures: a 95/5 weighted split
// over keep-alive connections to the two backends, and the forwarding
// headers. It has none of pipit's routing, statistics, outlier detection
// or protocol fallbacks, and serves as the reference for what fasthttp's
// HostClient costs on this machine: pipit's fast path is built on the
// same library, so the gap between the two rows is pipit's own work.
//
//	go run ./bench/proxy/baseline -listen 127.0.0.1:8081 -stable 127.0.0.1:9001 -canary 127.0.0.1:9002 -weight 5
package main

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"time"

	"github.com/valyala/fasthttp"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8081", "address to listen on")
	stable := flag.String("stable", "", "stable backend, host:port")
	canary := flag.String("canary", "", "canary backend, host:port")
	weight := flag.Int("weight", 5, "canary weight in percent")
	flag.Parse()
	if *stable == "" || *canary == "" {
		fmt.Fprintln(os.Stderr, "proxy-bench-baseline: -stable and -canary are required")
		os.Exit(2)
	}
	newClient := func(addr string) *fasthttp.HostClient {
		return &fasthttp.HostClient{Addr: addr, MaxConns: 1024, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second}
	}
	stableClient, canaryClient := newClient(*stable), newClient(*canary)
	handle := func(ctx *fasthttp.RequestCtx) {
		client := stableClient
		if rand.IntN(100) < *weight {
			client = canaryClient
		}
		ip := ctx.RemoteIP().String()
		host := ctx.Host()
		h := &ctx.Request.Header
		h.Set("X-Forwarded-For", ip)
		h.Set("X-Forwarded-Proto", "http")
		h.SetBytesV("X-Forwarded-Host", host)
		h.Set("Forwarded", "for="+ip+";host="+string(host)+";proto=http")
		if err := client.Do(&ctx.Request, &ctx.Response); err != nil {
			ctx.Response.Reset()
			ctx.SetStatusCode(fasthttp.StatusBadGateway)
		}
	}
	fmt.Printf("proxy-bench-baseline listening on %s\n", *listen)
	if err := fasthttp.ListenAndServe(*listen, handle); err != nil {
		fmt.Fprintln(os.Stderr, "proxy-bench-baseline:", err)
		os.Exit(1)
	}
}
