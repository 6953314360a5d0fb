package bridgehook

import (
	"errors"
	"strconv"
	"strings"

	"github.com/closeduel/closeduel/vlanmark"
)

// NftVLANPrefix starts the name of the nftables table (bridge family) that
// Config.VLANTags installs: closeduel-<queue>.
const NftVLANPrefix = "closeduel-"

// ErrVLANTagsQueues is returned for a Config with both VLANTags and
// Queues above 1: the queue spreading's HMARK target overwrites the whole
// firewall mark, and with it the VLAN id the bridge layer put there.
var ErrVLANTagsQueues = errors.New("bridgehook: VLAN tags in the log need one queue: spreading over several queues (HMARK) overwrites the firewall mark that carries the tag")

// VLANTable returns the name of the config's nftables table for VLANTags.
func (c Config) VLANTable() string { return NftVLANPrefix + strconv.Itoa(int(c.Queue)) }

// vlanCommands returns the nft commands (without "nft") that install the
// VLANTags table: one chain on the bridge family's forward hook at
// priority -200, which runs before br_netfilter hands the frame to
// iptables' FORWARD chain (priority -1) and so before the NFQUEUE rule,
// whatever the bridge did to the tag on the way in. Its rules match the
// hooked traffic only (TCP in frames with an 802.1Q or an 802.1ad tag,
// between the config's hosts when there are hosts) and write vlanmark's
// layout into the mark. (Frames with two tags never reach iptables.) The chain
// sees every bridge of the namespace: this kernel family has no match on
// the bridge's name everywhere (meta ibrname needs nft_meta_bridge), so
// Bridge does not narrow it; Hosts does.
func (c Config) vlanCommands() []string {
	t := "bridge " + c.VLANTable()
	out := []string{
		"add table " + t,
		"add chain " + t + " forward { type filter hook forward priority -200; policy accept; }",
	}
	for _, tpid := range []uint16{vlanmark.TPID8021Q, vlanmark.TPID8021AD} {
		match := "vlan id != 0"
		if tpid == vlanmark.TPID8021AD {
			match = "ether type 8021ad vlan id != 0"
		}
		for _, v6 := range []bool{false, true} {
			fam := "ip"
			if v6 {
				fam = "ip6"
			}
			var hosts []string
			for _, h := range c.Hosts {
				if h.Addr().Is6() == v6 {
					hosts = append(hosts, h.Masked().String())
				}
			}
			if len(c.Hosts) > 0 && len(hosts) == 0 {
				continue
			}
			r := "add rule " + t + " forward " + match + " vlan type " + fam
			if len(hosts) > 0 {
				set := "{ " + strings.Join(hosts, ", ") + " }"
				r += " " + fam + " saddr " + set + " " + fam + " daddr " + set
			}
			out = append(out, r+" meta l4proto tcp "+vlanmark.NftStatement(tpid)+` comment "closeduel: VLAN id into the mark"`)
		}
	}
	return out
}

// vlanScript is vlanCommands as an nft -f script.
func (c Config) vlanScript() string { return strings.Join(c.vlanCommands(), "\n") + "\n" }

// describeVLAN returns vlanCommands as shell command lines.
func (c Config) describeVLAN() []string {
	var out []string
	for _, cmd := range c.vlanCommands() {
		if i := strings.IndexByte(cmd, '{'); i >= 0 && strings.HasPrefix(cmd, "add chain") {
			cmd = cmd[:i] + "'" + cmd[i:] + "'"
		} else if strings.HasPrefix(cmd, "add rule") {
			cmd = shellQuoteRule(cmd)
		}
		out = append(out, "nft "+cmd)
	}
	return out
}

// shellQuoteRule quotes the parts of an nft rule a shell would take: the
// sets' braces and the comment's quotes.
func shellQuoteRule(cmd string) string {
	head, comment, _ := strings.Cut(cmd, " comment ")
	head = strings.ReplaceAll(head, "{ ", "'{ ")
	head = strings.ReplaceAll(head, " }", " }'")
	head = strings.ReplaceAll(head, "& ", "'&' ")
	head = strings.ReplaceAll(head, "| ", "'|' ")
	return head + " comment '" + comment + "'"
}
