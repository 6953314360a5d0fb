package bridgehook

import (
	"fmt"
	"net/netip"
	"slices"
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
	// Queues, when above 1, spreads connections over the queues Queue to
	// Queue+Queues-1: an HMARK rule hashes each packet's addresses and
	// ports symmetrically into its firewall mark (both directions of a
	// connection get the same), and one NFQUEUE rule per mark sends it on.
	// (NFQUEUE's own --queue-balance hashes the addresses only, so every
	// connection between two hosts would meet in one queue.) It sets the
	// packets' firewall mark.
	Queues int
	// VLANTags copies the 802.1Q VLAN id of every tagged frame of the
	// hooked traffic into its firewall mark at the bridge layer (package
	// vlanmark's layout), which the queue hands to the engine with the
	// packet, so the verdict log and the capture keep the tag. It installs
	// an nftables table of the bridge family (VLANTable) with the nft
	// binary, and sets the mark of those frames. Not with Queues above 1
	// (ErrVLANTagsQueues).
	VLANTags bool
}

// hmarkRnd seeds HMARK's hash (any constant will do: "clos").
const hmarkRnd = "0x636c6f73"

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
	var out [][]string
	for _, sel := range c.selectors(v6) {
		if c.Queues <= 1 {
			out = append(out, append(sel, "-j", "NFQUEUE", "--queue-num", strconv.Itoa(int(c.Queue)), "--queue-bypass"))
			continue
		}
		out = append(out, append(slices.Clone(sel), "-j", "HMARK", "--hmark-tuple", "src,dst,sport,dport,proto",
			"--hmark-mod", strconv.Itoa(c.Queues), "--hmark-offset", "1", "--hmark-rnd", hmarkRnd))
		for i := range c.Queues {
			out = append(out, append(slices.Clone(sel), "-m", "mark", "--mark", strconv.Itoa(i+1),
				"-j", "NFQUEUE", "--queue-num", strconv.Itoa(int(c.Queue)+i), "--queue-bypass"))
		}
	}
	return out
}

// selectors returns the chain's matches for one family: CHAIN -p tcp,
// with -s A -d B for each pair of hosts when there are hosts.
func (c Config) selectors(v6 bool) [][]string {
	var hosts []netip.Prefix
	for _, h := range c.Hosts {
		if h.Addr().Is6() == v6 {
			hosts = append(hosts, h.Masked())
		}
	}
	if len(c.Hosts) == 0 {
		return [][]string{{c.Chain(), "-p", "tcp"}}
	}
	var out [][]string
	for i, a := range hosts {
		for j, b := range hosts {
			if i == j && len(hosts) > 1 {
				continue
			}
			out = append(out, []string{c.Chain(), "-p", "tcp", "-s", a.String(), "-d", b.String()})
		}
	}
	return out
}

// Describe returns the iptables commands Install runs, for users who
// install the rules themselves (`closeduel run --hook none`).
func (c Config) Describe() []string {
	var out []string
	if c.VLANTags {
		out = append(out, c.describeVLAN()...)
	}
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

// DescribeRemove returns the iptables commands that take out what
// Describe's commands install (what Remove does).
func (c Config) DescribeRemove() []string {
	var out []string
	for _, v6 := range []bool{false, true} {
		bin := "iptables"
		if v6 {
			bin = "ip6tables"
		}
		if len(c.queueRules(v6)) == 0 {
			continue
		}
		out = append(out,
			bin+" -w -D "+joinArgs(c.jumpArgs()),
			fmt.Sprintf("%s -w -F %s", bin, c.Chain()),
			fmt.Sprintf("%s -w -X %s", bin, c.Chain()))
	}
	if c.VLANTags {
		out = append(out, "nft delete table bridge "+c.VLANTable())
	}
	return out
}

// NftTable is the nftables table of DescribeNftables' rules.
const NftTable = "closeduel"

// DescribeNftables returns nft commands equivalent to Describe's rules, for
// hosts whose firewall is native nftables. They need the kernel's nft
// queue expression (CONFIG_NFT_QUEUE, module nft_queue), which iptables'
// NFQUEUE target does not: `nft add rule` fails with "No such file or
// directory" without it. remove takes them out again.
func (c Config) DescribeNftables() (install, remove []string) {
	chain := fmt.Sprintf("forward%d", c.Queue)
	out := []string{
		"nft add table inet " + NftTable,
		fmt.Sprintf("nft add chain inet %s %s '{ type filter hook forward priority 0; policy accept; }'", NftTable, chain),
	}
	dev := ""
	if c.Bridge != "" {
		dev = fmt.Sprintf("iifname %s oifname %s ", c.Bridge, c.Bridge)
	}
	target := fmt.Sprintf("queue num %d bypass", c.Queue)
	if c.Queues > 1 {
		target = fmt.Sprintf("queue flags bypass to symhash mod %d offset %d", c.Queues, c.Queue)
	}
	if len(c.Hosts) == 0 {
		out = append(out, fmt.Sprintf("nft add rule inet %s %s %smeta l4proto tcp %s", NftTable, chain, dev, target))
	}
	for _, v6 := range []bool{false, true} {
		fam := "ip"
		if v6 {
			fam = "ip6"
		}
		for _, r := range c.selectors(v6) {
			if len(c.Hosts) == 0 {
				break
			}
			// r is CHAIN -p tcp -s A -d B
			out = append(out, fmt.Sprintf("nft add rule inet %s %s %s%s saddr %s %s daddr %s meta l4proto tcp %s",
				NftTable, chain, dev, fam, r[4], fam, r[6], target))
		}
	}
	return out, []string{
		fmt.Sprintf("nft flush chain inet %s %s", NftTable, chain),
		fmt.Sprintf("nft delete chain inet %s %s", NftTable, chain),
	}
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
