// Package bridgehook installs and removes the iptables rules that send
// bridged TCP to closeduel's NFQUEUE: a chain of its own (CLOSEDUEL-<queue>)
// jumped to from FORWARD, for IPv4 and IPv6, with --queue-bypass so traffic
// flows on when no engine is bound, and with VLANTags an nftables table of
// the bridge family that copies VLAN tags into marks. It needs root and
// br_netfilter (and the nft command for VLANTags).
package bridgehook
