package bridgehook

import (
	"fmt"
	"net/netip"
	"strconv"
)

// ChainPrefix starts the name of every chain this package makes.
const ChainPrefix = "CLOSEDUEL"

// Config says which traffic to queue where.
type Config struct {
	// NetNS names the namespace (as `ip netns` knows it) that holds the
	// bridge; "" is ours.
	NetNS string
	// Queue is the NFQUEUE number.
	Queue uint16
	// Bridge limits the rule to one bridge (its name); "" matches every
	// bridge.
	Bridge string
	// Hosts limits the rule to TCP between these addresses or prefixes
	// (both ends must match); empty queues all bridged TCP.
	Hosts []netip.Prefix
}

// Chain returns the name of the chain for the config's queue.
func (c Config) Chain() string { return ChainPrefix + "-" + strconv.Itoa(int(c.Queue)) }

// rule is one iptables command line (without the binary), for one family.
type rule struct {
	v6   bool
	args []string
}

// jumpArgs returns the FORWARD rule that jumps to the chain.
func (c Config) jumpArgs() []string {
	args := []string{"FORWARD", "-p", "tcp", "-m", "physdev", "--physdev-is-bridged"}
	if c.Bridge != "" {
		args = append(args, "-i", c.Bridge, "-o", c.Bridge)
	}
	return append(args, "-m", "comment", "--comment", "closeduel", "-j", c.Chain())
}

// queueRules returns the chain's NFQUEUE rules for one family.
func (c Config) queueRules(v6 bool) [][]string {
	target := []string{"-j", "NFQUEUE", "--queue-num", strconv.Itoa(int(c.Queue)), "--queue-bypass"}
	var hosts []netip.Prefix
	for _, h := range c.Hosts {
		if h.Addr().Is6() == v6 {
			hosts = append(hosts, h.Masked())
		}
	}
	if len(c.Hosts) == 0 {
		return [][]string{append([]string{c.Chain(), "-p", "tcp"}, target...)}
	}
	var out [][]string
	for i, a := range hosts {
		for j, b := range hosts {
			if i == j && len(hosts) > 1 {
				continue
			}
			out = append(out, append([]string{c.Chain(), "-p", "tcp", "-s", a.String(), "-d", b.String()}, target...))
		}
	}
	return out
}

// Describe returns the iptables commands Install runs, for users who
// install the rules themselves (`closeduel run --hook none`).
func (c Config) Describe() []string {
	var out []string
	for _, v6 := range []bool{false, true} {
		bin := "iptables"
		if v6 {
			bin = "ip6tables"
		}
		rules := c.queueRules(v6)
		if len(rules) == 0 {
			continue
		}
		out = append(out, fmt.Sprintf("%s -w -N %s", bin, c.Chain()))
		for _, r := range rules {
			out = append(out, bin+" -w -A "+joinArgs(r))
		}
		out = append(out, bin+" -w -I "+joinArgs(c.jumpArgs()))
	}
	return out
}

func joinArgs(args []string) string {
	s := ""
	for i, a := range args {
		if i > 0 {
			s += " "
		}
		s += a
	}
	return s
}
