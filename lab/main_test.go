package lab

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"testing"
)

// helperArg makes the test binary play the lab's helper subcommands, so
// that integration tests can use it as Config.Helper.
const helperArg = "lab-test-helper"

func TestMain(m *testing.M) {
	if len(os.Args) == 5 && os.Args[1] == helperArg && os.Args[3] == "--config" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		err := RunHelper(ctx, os.Args[2], os.Args[4], os.Stdout)
		stop()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}
