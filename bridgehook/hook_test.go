package bridgehook

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestDescribeListsTheRulesInstallRuns(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want []string
	}{
		{
			name: "all bridged TCP",
			cfg:  Config{Queue: 7},
			want: []string{
				"iptables -w -N CLOSEDUEL-7",
				"iptables -w -A CLOSEDUEL-7 -p tcp -j NFQUEUE --queue-num 7 --queue-bypass",
				"iptables -w -I FORWARD -p tcp -m physdev --physdev-is-bridged -m comment --comment closeduel -j CLOSEDUEL-7",
				"ip6tables -w -N CLOSEDUEL-7",
				"ip6tables -w -A CLOSEDUEL-7 -p tcp -j NFQUEUE --queue-num 7 --queue-bypass",
				"ip6tables -w -I FORWARD -p tcp -m physdev --physdev-is-bridged -m comment --comment closeduel -j CLOSEDUEL-7",
			},
		},
		{
			name: "two IPv4 hosts on one bridge",
			cfg: Config{Queue: 3, Bridge: "br0", Hosts: []netip.Prefix{
				netip.MustParsePrefix("192.168.100.1/32"), netip.MustParsePrefix("192.168.100.99/32"),
			}},
			want: []string{
				"iptables -w -N CLOSEDUEL-3",
				"iptables -w -A CLOSEDUEL-3 -p tcp -s 192.168.100.1/32 -d 192.168.100.99/32 -j NFQUEUE --queue-num 3 --queue-bypass",
				"iptables -w -A CLOSEDUEL-3 -p tcp -s 192.168.100.99/32 -d 192.168.100.1/32 -j NFQUEUE --queue-num 3 --queue-bypass",
				"iptables -w -I FORWARD -p tcp -m physdev --physdev-is-bridged -i br0 -o br0 -m comment --comment closeduel -j CLOSEDUEL-3",
			},
		},
		{
			name: "one prefix matches traffic inside it",
			cfg:  Config{Queue: 1, Hosts: []netip.Prefix{netip.MustParsePrefix("10.9.0.7/24")}},
			want: []string{
				"iptables -w -N CLOSEDUEL-1",
				"iptables -w -A CLOSEDUEL-1 -p tcp -s 10.9.0.0/24 -d 10.9.0.0/24 -j NFQUEUE --queue-num 1 --queue-bypass",
				"iptables -w -I FORWARD -p tcp -m physdev --physdev-is-bridged -m comment --comment closeduel -j CLOSEDUEL-1",
			},
		},
		{
			name: "two queues, each connection on one",
			cfg:  Config{Queue: 7, Queues: 2, Hosts: []netip.Prefix{netip.MustParsePrefix("10.9.0.7/24")}},
			want: []string{
				"iptables -w -N CLOSEDUEL-7",
				"iptables -w -A CLOSEDUEL-7 -p tcp -s 10.9.0.0/24 -d 10.9.0.0/24 -j HMARK --hmark-tuple src,dst,sport,dport,proto --hmark-mod 2 --hmark-offset 1 --hmark-rnd 0x636c6f73",
				"iptables -w -A CLOSEDUEL-7 -p tcp -s 10.9.0.0/24 -d 10.9.0.0/24 -m mark --mark 1 -j NFQUEUE --queue-num 7 --queue-bypass",
				"iptables -w -A CLOSEDUEL-7 -p tcp -s 10.9.0.0/24 -d 10.9.0.0/24 -m mark --mark 2 -j NFQUEUE --queue-num 8 --queue-bypass",
				"iptables -w -I FORWARD -p tcp -m physdev --physdev-is-bridged -m comment --comment closeduel -j CLOSEDUEL-7",
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, tc.cfg.Describe()); diff != "" {
				t.Fatalf("rules (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDescribeRemoveAndNftables(t *testing.T) {
	cfg := Config{Queue: 3, Bridge: "br0", Hosts: []netip.Prefix{
		netip.MustParsePrefix("192.168.100.1/32"), netip.MustParsePrefix("192.168.100.99/32"),
	}}
	if diff := cmp.Diff([]string{
		"iptables -w -D FORWARD -p tcp -m physdev --physdev-is-bridged -i br0 -o br0 -m comment --comment closeduel -j CLOSEDUEL-3",
		"iptables -w -F CLOSEDUEL-3",
		"iptables -w -X CLOSEDUEL-3",
	}, cfg.DescribeRemove()); diff != "" {
		t.Errorf("remove (-want +got):\n%s", diff)
	}
	install, remove := cfg.DescribeNftables()
	if diff := cmp.Diff([]string{
		"nft add table inet closeduel",
		"nft add chain inet closeduel forward3 '{ type filter hook forward priority 0; policy accept; }'",
		"nft add rule inet closeduel forward3 iifname br0 oifname br0 ip saddr 192.168.100.1/32 ip daddr 192.168.100.99/32 meta l4proto tcp queue num 3 bypass",
		"nft add rule inet closeduel forward3 iifname br0 oifname br0 ip saddr 192.168.100.99/32 ip daddr 192.168.100.1/32 meta l4proto tcp queue num 3 bypass",
		"nft flush chain inet closeduel forward3",
		"nft delete chain inet closeduel forward3",
	}, append(install, remove...)); diff != "" {
		t.Errorf("nftables (-want +got):\n%s", diff)
	}
	all := Config{Queue: 7}
	if got, _ := all.DescribeNftables(); got[2] != "nft add rule inet closeduel forward7 meta l4proto tcp queue num 7 bypass" {
		t.Errorf("all TCP: %q", got[2])
	}
}

func TestVLANTagsAddTheBridgeTableToTheRecipe(t *testing.T) {
	cfg := Config{Queue: 3, Bridge: "br0", VLANTags: true, Hosts: []netip.Prefix{
		netip.MustParsePrefix("192.168.100.1/32"), netip.MustParsePrefix("192.168.100.99/32"),
	}}
	got := cfg.Describe()
	want := []string{
		"nft add table bridge closeduel-3",
		"nft add chain bridge closeduel-3 forward '{ type filter hook forward priority -200; policy accept; }'",
		"nft add rule bridge closeduel-3 forward vlan id != 0 vlan type ip ip saddr '{ 192.168.100.1/32, 192.168.100.99/32 }' ip daddr '{ 192.168.100.1/32, 192.168.100.99/32 }' meta l4proto tcp meta mark set @ll,112,32 '&' 0x0fff0000 '|' 0x0000cd01 comment '\"closeduel: VLAN id into the mark\"'",
	}
	if diff := cmp.Diff(want, got[:3]); diff != "" {
		t.Errorf("install (-want +got):\n%s", diff)
	}
	if rm := cfg.DescribeRemove(); rm[len(rm)-1] != "nft delete table bridge closeduel-3" {
		t.Errorf("remove ends with %q", rm[len(rm)-1])
	}
	all := Config{Queue: 7, VLANTags: true}
	cmds := all.vlanCommands()
	if len(cmds) != 6 || cmds[2] != `add rule bridge closeduel-7 forward vlan id != 0 vlan type ip meta l4proto tcp meta mark set @ll,112,32 & 0x0fff0000 | 0x0000cd01 comment "closeduel: VLAN id into the mark"` ||
		cmds[5] != `add rule bridge closeduel-7 forward ether type 8021ad vlan id != 0 vlan type ip6 meta l4proto tcp meta mark set @ll,112,32 & 0x0fff0000 | 0x0000cd02 comment "closeduel: VLAN id into the mark"` {
		t.Errorf("all TCP, both families, both tags: %q", cmds)
	}
}
