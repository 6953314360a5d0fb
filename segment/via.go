package segment

import "strings"

// Via is the set of encapsulations and special cases a decoded segment
// came through: what Decode had to cross or tolerate to reach its TCP
// header. The zero Via is a plain IP packet with its own length.
type Via uint16

// Encapsulations and cases Decode reports in Segment.Via.
const (
	ViaVLAN       Via = 1 << iota // one or more 802.1Q tags
	ViaQinQ                       // an 802.1ad (or 0x9100) service tag
	ViaMPLS                       // an MPLS label stack
	ViaLLC                        // 802.3 framing with LLC/SNAP
	ViaPPPoE                      // a PPPoE session
	ViaIPinIP                     // IPv4 or IPv6 directly inside IP
	ViaGRE                        // a GRE tunnel (ERSPAN and PPTP included)
	ViaVXLAN                      // a VXLAN tunnel
	ViaGeneve                     // a Geneve tunnel
	ViaIPv6Ext                    // IPv6 extension headers before TCP
	ViaFragment                   // the first fragment of a fragmented datagram
	ViaZeroLength                 // an IP length field of 0 (TSO, BIG TCP): length from the frame
	ViaCapped                     // an IP length beyond the frame's wire length: payload capped
	ViaCutHeader                  // a TCP header whose options the capture cut: options unread
)

// viaNames are the names String gives each bit, in bit order.
var viaNames = [...]string{"vlan", "qinq", "mpls", "llc-snap", "pppoe", "ip-in-ip", "gre", "vxlan", "geneve", "ipv6-ext", "fragment", "zero-length", "capped", "cut-header"}

// ViaNames returns the name of every Via bit, in bit order.
func ViaNames() []string { return viaNames[:] }

// Tunnelled reports whether the TCP header sits inside a tunnel (IP in IP,
// GRE, VXLAN, Geneve): its IP header is not the packet's outer one.
func (v Via) Tunnelled() bool { return v&(ViaIPinIP|ViaGRE|ViaVXLAN|ViaGeneve) != 0 }

// String names the bits joined by "+", or "plain" for none.
func (v Via) String() string {
	if v == 0 {
		return "plain"
	}
	var b strings.Builder
	for i, n := range viaNames {
		if v&(1<<i) != 0 {
			if b.Len() > 0 {
				b.WriteByte('+')
			}
			b.WriteString(n)
		}
	}
	return b.String()
}
