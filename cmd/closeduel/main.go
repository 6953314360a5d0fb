// Command closeduel is a transparent NFQUEUE middlebox and lab for studying
// TCP close "duels" between Linux and embedded (lwIP) stacks.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "closeduel:", err)
		os.Exit(exitCode(err))
	}
}
