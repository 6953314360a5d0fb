package bridgehook

import (
	"context"
	"fmt"
	"strings"

	"github.com/closeduel/closeduel/netns"
)

// Chain is one of this package's chains found in a namespace, or the
// nftables table of a VLANTags hook.
type Chain struct {
	// Bin is iptables, ip6tables or nft.
	Bin string
	// Name is the chain's name, CLOSEDUEL-<queue>, or the table's,
	// closeduel-<queue>.
	Name string
}

// Chains lists this package's chains in namespace ns ("" for the
// current one), for `closeduel cleanup` to judge one by one.
func Chains(ctx context.Context, ns string) ([]Chain, error) {
	var out []Chain
	for _, bin := range []string{"iptables", "ip6tables"} {
		text, err := netns.Output(ctx, ns, bin, "-w", "-S")
		if err != nil {
			return out, fmt.Errorf("bridgehook: list %s rules: %w", bin, err)
		}
		for _, line := range strings.Split(text, "\n") {
			f := strings.Fields(line)
			if len(f) == 2 && f[0] == "-N" && strings.HasPrefix(f[1], ChainPrefix) {
				out = append(out, Chain{Bin: bin, Name: f[1]})
			}
		}
	}
	tables, err := vlanTables(ctx, ns)
	for _, t := range tables {
		out = append(out, Chain{Bin: nftBin, Name: t})
	}
	return out, err
}

// RemoveChain removes one chain and the jumps to it.
func RemoveChain(ctx context.Context, ns string, c Chain) error {
	if c.Bin == nftBin {
		return removeVLANTable(ctx, ns, c.Name)
	}
	return removeChain(ctx, ns, c.Bin, c.Name)
}
