// Command pipit is a progressive delivery system: it rolls a new version of a
// service out to a growing share of its users while it stays healthy, and
// rolls it back when it does not.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/pipit-dev/pipit/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Execute(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
