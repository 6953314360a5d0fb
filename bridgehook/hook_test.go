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
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, tc.cfg.Describe()); diff != "" {
				t.Fatalf("rules (-want +got):\n%s", diff)
			}
		})
	}
}
