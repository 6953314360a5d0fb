// Package vlanmark holds the one layout of the firewall mark that carries a
// bridged frame's 802.1Q VLAN id from the bridge layer, where the tag is
// still known, to the NFQUEUE engine, which gets only the IP packet and its
// mark: bridgehook's nft rule writes it, nfq reads it. It needs nothing.
package vlanmark
