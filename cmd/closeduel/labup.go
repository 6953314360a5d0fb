package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/closeduel/closeduel/lab"
	"github.com/closeduel/closeduel/netns"
	"github.com/closeduel/closeduel/topology"
)

// labStateDir keeps the pid of each bench's device server.
const labStateDir = "/run/closeduel"

// labUpCommand is `closeduel lab up`: a bench that stays up for hand work.
func labUpCommand() *cli.Command {
	return &cli.Command{
		Name:  "up",
		Usage: "build a bench (client, bridge, Linux device serving HTTP) and leave it up, to try closeduel run by hand",
		Description: `Builds the namespaces cd-NAME-client (192.168.100.1), cd-NAME-bridge (bridge
br0) and cd-NAME-device (192.168.100.99, HTTP on port 80) and leaves them up until
"closeduel lab down".` + examples(
			"closeduel lab up",
			"closeduel run --netns cd-demo-bridge --log verdicts.jsonl",
		),
		Flags: []cli.Flag{&cli.StringFlag{Name: "name", Value: "demo", Usage: "bench name; namespaces are cd-NAME-client, cd-NAME-bridge, cd-NAME-device"}},
		Action: func(c *cli.Context) error {
			name := c.String("name")
			topo, err := topology.Build(c.Context, topology.Config{Name: name})
			if err != nil {
				return fmt.Errorf("lab up: %w", err)
			}
			pid, err := startDeviceServer(c, topo)
			if err != nil {
				return errors.Join(fmt.Errorf("lab up: %w", err), topo.Close())
			}
			out := c.App.Writer
			fmt.Fprintf(out, "bench %q is up:\n", name)
			fmt.Fprintf(out, "  client  %-18s %s\n", topo.Client, topo.ClientAddr.Addr())
			fmt.Fprintf(out, "  bridge  %-18s %s (put closeduel here)\n", topo.Bridge, topology.BridgeName)
			fmt.Fprintf(out, "  device  %-18s %s, HTTP on port 80 (Linux stack, closes first; pid %d)\n", topo.Device, topo.DeviceAddr.Addr(), pid)
			fmt.Fprintf(out, "try:\n")
			fmt.Fprintf(out, "  closeduel run --netns %s --log verdicts.jsonl --pcap capture.pcapng\n", topo.Bridge)
			fmt.Fprintf(out, "  ip netns exec %s curl -sI http://%s/\n", topo.Client, topo.DeviceAddr.Addr())
			fmt.Fprintf(out, "  tshark -r capture.pcapng -T fields -e frame.number -e tcp.flags.str -e frame.comment\n")
			fmt.Fprintf(out, "  closeduel lab down --name %s\n", name)
			return nil
		},
	}
}

// startDeviceServer starts the Linux device in the device namespace as a
// process of its own session, so it outlives this command, and records
// its pid for lab down.
func startDeviceServer(c *cli.Context, topo *topology.Topology) (int, error) {
	exe, err := os.Executable()
	if err != nil {
		return 0, err
	}
	cfg, _ := json.Marshal(lab.LinuxDeviceConfig{Listen: topo.DeviceAddr.Addr().String() + ":80", Close: lab.CloseAfterSend, Size: lab.DefaultSize})
	cmd := netns.Command(c.Context, topo.Device, exe, "lab", lab.HelperLinuxDevice, "--config", string(cfg))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	cmd.Cancel = nil
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("start the device server: %w", err)
	}
	pid := cmd.Process.Pid
	cmd.Process.Release()
	if err := os.MkdirAll(labStateDir, 0o755); err != nil {
		return pid, err
	}
	return pid, os.WriteFile(pidFile(topo.Name), []byte(strconv.Itoa(pid)), 0o644)
}

func pidFile(name string) string { return filepath.Join(labStateDir, "lab-"+name+".pid") }

// labDownCommand is `closeduel lab down`: stops and removes a bench made by
// lab up.
func labDownCommand() *cli.Command {
	return &cli.Command{
		Name:  "down",
		Usage: "stop and remove a bench made by lab up",
		Description: "Stops the bench's device server and removes its namespaces." + examples(
			"closeduel lab down",
			"closeduel lab down --name mybench",
		),
		Flags: []cli.Flag{&cli.StringFlag{Name: "name", Value: "demo", Usage: "bench name"}},
		Action: func(c *cli.Context) error {
			name := c.String("name")
			if b, err := os.ReadFile(pidFile(name)); err == nil {
				if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 0 {
					syscall.Kill(-pid, syscall.SIGTERM) // its session: ip netns exec and the server
					syscall.Kill(pid, syscall.SIGTERM)
				}
				os.Remove(pidFile(name))
			}
			topo := &topology.Topology{Client: topology.NamePrefix + name + "-client", Bridge: topology.NamePrefix + name + "-bridge", Device: topology.NamePrefix + name + "-device"}
			if err := topo.Close(); err != nil {
				return fmt.Errorf("lab down: %w", err)
			}
			fmt.Fprintf(c.App.Writer, "bench %q removed\n", name)
			return nil
		},
	}
}
