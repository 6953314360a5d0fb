package topology

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/closeduel/closeduel/netns"
)

// Topology is a built bench. Close removes it.
type Topology struct {
	Config
	// Client, Bridge and Device are the namespace names; Device is "" for
	// a tap device.
	Client, Bridge, Device string
}

func (c *Config) fill() error {
	if c.Name == "" {
		return errors.New("topology: a name is required")
	}
	if len(NamePrefix+c.Name+"-client") > 64 || strings.ContainsAny(c.Name, "/ ") {
		return fmt.Errorf("topology: bad name %q", c.Name)
	}
	if !c.ClientAddr.IsValid() {
		c.ClientAddr = netip.MustParsePrefix("192.168.100.1/24")
	}
	if !c.DeviceAddr.IsValid() {
		c.DeviceAddr = netip.MustParsePrefix("192.168.100.99/24")
	}
	return nil
}

// Build creates the namespaces, the bridge and the ports. On failure it
// removes whatever it made.
func Build(ctx context.Context, cfg Config) (t *Topology, err error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	base := NamePrefix + cfg.Name
	t = &Topology{Config: cfg, Client: base + "-client", Bridge: base + "-bridge"}
	if !cfg.DeviceTap {
		t.Device = base + "-device"
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, t.Close())
			t = nil
		}
	}()
	for _, ns := range []string{t.Client, t.Bridge, t.Device} {
		if ns == "" {
			continue
		}
		if netns.Exists(ns) {
			return t, fmt.Errorf("topology: namespace %s exists already (a crashed run? `closeduel cleanup` removes it)", ns)
		}
		if err := netns.Add(ctx, ns); err != nil {
			return t, err
		}
	}
	steps := [][]string{
		{"", "ip", "-n", t.Bridge, "link", "add", BridgeName, "type", "bridge", "forward_delay", "0", "stp_state", "0"},
		{"", "ip", "-n", t.Bridge, "link", "add", ClientPort, "type", "veth", "peer", "name", HostIface, "netns", t.Client},
		{t.Client, "ip", "addr", "add", cfg.ClientAddr.String(), "dev", HostIface},
		{t.Client, "ip", "link", "set", HostIface, "up"},
		{t.Bridge, "ip", "link", "set", ClientPort, "master", BridgeName},
		{t.Bridge, "ip", "link", "set", ClientPort, "up"},
	}
	if cfg.DeviceTap {
		steps = append(steps,
			[]string{t.Bridge, "ip", "tuntap", "add", "dev", TapName, "mode", "tap"},
			[]string{t.Bridge, "ip", "link", "set", TapName, "master", BridgeName},
			[]string{t.Bridge, "ip", "link", "set", TapName, "up"},
		)
	} else {
		steps = append(steps,
			[]string{"", "ip", "-n", t.Bridge, "link", "add", DevicePort, "type", "veth", "peer", "name", HostIface, "netns", t.Device},
			[]string{t.Device, "ip", "addr", "add", cfg.DeviceAddr.String(), "dev", HostIface},
			[]string{t.Device, "ip", "link", "set", HostIface, "up"},
			[]string{t.Bridge, "ip", "link", "set", DevicePort, "master", BridgeName},
			[]string{t.Bridge, "ip", "link", "set", DevicePort, "up"},
		)
	}
	steps = append(steps, []string{t.Bridge, "ip", "link", "set", BridgeName, "up"})
	if !cfg.KeepOffload {
		steps = append(steps, []string{t.Client, "ethtool", "-K", HostIface, "tx", "off"})
		if t.Device != "" {
			steps = append(steps, []string{t.Device, "ethtool", "-K", HostIface, "tx", "off"})
		}
	}
	for _, s := range steps {
		if err := netns.Run(ctx, s[0], s[1:]...); err != nil {
			return t, fmt.Errorf("topology: %w", err)
		}
	}
	if err := t.setBridgeNetfilter(); err != nil {
		return t, err
	}
	if !cfg.SpreadCPUs {
		if err := t.pinRPS(); err != nil {
			return t, err
		}
	}
	return t, nil
}

// setBridgeNetfilter makes bridged IPv4/IPv6 traffic pass iptables in the
// bridge namespace (br_netfilter's per-namespace switches), VLAN-tagged
// traffic included.
func (t *Topology) setBridgeNetfilter() error {
	return netns.Do(t.Bridge, func() error {
		for _, k := range []string{"bridge-nf-call-iptables", "bridge-nf-call-ip6tables", "bridge-nf-filter-vlan-tagged"} {
			p := filepath.Join("/proc/sys/net/bridge", k)
			if err := os.WriteFile(p, []byte("1"), 0o644); err != nil {
				return fmt.Errorf("topology: br_netfilter: %w (is the br_netfilter module loaded?)", err)
			}
		}
		return nil
	})
}

// pinRPS steers the receive processing of every port and host interface to
// CPU 0.
func (t *Topology) pinRPS() error {
	set := func(ns string, ifaces ...string) error {
		return netns.Do(ns, func() error {
			for _, ifc := range ifaces {
				matches, _ := filepath.Glob(filepath.Join("/sys/class/net", ifc, "queues", "rx-*", "rps_cpus"))
				for _, m := range matches {
					if err := os.WriteFile(m, []byte(defaultCPU), 0o644); err != nil {
						return fmt.Errorf("topology: rps on %s in %s: %w", ifc, ns, err)
					}
				}
			}
			return nil
		})
	}
	if err := set(t.Client, HostIface); err != nil {
		return err
	}
	ports := []string{ClientPort, DevicePort}
	if t.DeviceTap {
		ports = []string{ClientPort, TapName}
	}
	if err := set(t.Bridge, ports...); err != nil {
		return err
	}
	if t.Device != "" {
		return set(t.Device, HostIface)
	}
	return nil
}

// Namespaces returns the names of the namespaces the topology holds.
func (t *Topology) Namespaces() []string {
	out := []string{t.Client, t.Bridge}
	if t.Device != "" {
		out = append(out, t.Device)
	}
	return out
}

// Close removes the namespaces and with them every interface of the bench.
func (t *Topology) Close() error {
	var errs []error
	for _, ns := range t.Namespaces() {
		if ns == "" {
			continue
		}
		if err := netns.Delete(ns); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Sweep removes every namespace of this package whose name starts with
// NamePrefix+prefix, left over by crashed runs, and returns their names.
func Sweep(prefix string) ([]string, error) {
	names, err := netns.List(NamePrefix + prefix)
	if err != nil {
		return nil, err
	}
	var errs []error
	for _, n := range names {
		errs = append(errs, netns.Delete(n))
	}
	return names, errors.Join(errs...)
}

// Leftovers lists the namespaces of this package whose names start with
// NamePrefix+prefix, without removing them.
func Leftovers(prefix string) ([]string, error) {
	return netns.List(NamePrefix + prefix)
}
