package lab

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
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
