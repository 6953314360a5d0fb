package vlanmark

import "encoding/binary"

// Why a mark: iptables' NFQUEUE target queues a bridged packet as an IPv4
// or IPv6 one (br_netfilter hands it to the IP hooks), and nfnetlink_queue
// reports the VLAN tag (NFQA_VLAN) and the link-layer header (NFQA_L2HDR)
// only for packets queued by the bridge family, which the kernels without
// nft's queue expression cannot do. The mark it does report (NFQA_MARK) is
// per packet, so a rule at the bridge layer that copies each frame's tag
// into its own mark makes the tag exact for every packet.
//
// The layout, in the mark's bytes in host memory order (nft's meta mark
// statement stores a 4-byte register as is): bytes 0 and 1 are the tag's
// TCI in network order with the priority and DEI bits cleared (so the VLAN
// id, 1 to 4094), bytes 2 and 3 are Magic0 and Magic1, which say the mark
// is ours. Writing the register as bytes keeps the rule the same on
// little- and big-endian hosts.
const (
	Magic0 = 0xcd
	Magic1 = 0x01
)

// NftStatement is the nft statement that writes the layout from a tagged
// frame: it loads the TCI and the two bytes after it (the inner
// EtherType), keeps the VLAN id and puts Magic0, Magic1 in place of the
// EtherType. It goes after a match on 802.1Q frames with a VLAN id.
const NftStatement = "meta mark set @ll,112,32 & 0x0fff0000 | 0x0000cd01"

// ID returns the VLAN id mark carries, and false when mark does not carry
// one in this layout (no tag, or a mark someone else set).
func ID(mark uint32) (uint16, bool) {
	var b [4]byte
	binary.NativeEndian.PutUint32(b[:], mark)
	if b[2] != Magic0 || b[3] != Magic1 || b[0]&0xf0 != 0 {
		return 0, false
	}
	id := binary.BigEndian.Uint16(b[:2])
	return id, id != 0
}

// Mark returns the mark NftStatement writes for VLAN id (for tests and
// for reading a mark by hand).
func Mark(id uint16) uint32 {
	var b [4]byte
	binary.BigEndian.PutUint16(b[:2], id&0x0fff)
	b[2], b[3] = Magic0, Magic1
	return binary.NativeEndian.Uint32(b[:])
}
