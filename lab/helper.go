package lab

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// Helper subcommands: the processes the lab starts inside its namespaces
// run this same program with one of these and a JSON config.
const (
	HelperClient      = "client"       // RunClient with a ClientConfig
	HelperLinuxDevice = "device-linux" // ServeLinux with a LinuxDeviceConfig
)

// RunHelper runs the helper subcommand name with its JSON config, writing
// its JSON Lines to out, until it finishes or ctx is done.
func RunHelper(ctx context.Context, name, config string, out io.Writer) error {
	switch name {
	case HelperClient:
		var cfg ClientConfig
		if err := json.Unmarshal([]byte(config), &cfg); err != nil {
			return fmt.Errorf("lab: client config: %w", err)
		}
		err := RunClient(ctx, cfg, out)
		if ctx.Err() != nil {
			return nil // stopped by the bench
		}
		return err
	case HelperLinuxDevice:
		var cfg LinuxDeviceConfig
		if err := json.Unmarshal([]byte(config), &cfg); err != nil {
			return fmt.Errorf("lab: device config: %w", err)
		}
		return ServeLinux(ctx, cfg, out)
	}
	return fmt.Errorf("lab: unknown helper %q", name)
}

// HelperMain lets a test binary stand in for closeduel as the lab's
// helper (Config.Helper): when args (os.Args[1:]) are word, a helper's
// name and --config with its JSON, it runs that helper until it finishes
// or the process gets SIGINT or SIGTERM, and returns the exit code with ok
// set; for any other args it returns ok false and does nothing.
func HelperMain(word string, args []string) (code int, ok bool) {
	if len(args) != 4 || args[0] != word || args[2] != "--config" || (args[1] != HelperClient && args[1] != HelperLinuxDevice) {
		return 0, false
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := RunHelper(ctx, args[1], args[3], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1, true
	}
	return 0, true
}
