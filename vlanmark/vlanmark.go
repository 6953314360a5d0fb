package vlanmark

import (
	"encoding/binary"
	"fmt"
	"strconv"
)

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
// id, 1 to 4094), byte 2 is Magic, which says the mark is ours, byte 3 says
// which tag it was (KindQ for 802.1Q, KindAD for 802.1ad). Writing the
// register as bytes keeps the rule the same on little- and big-endian
// hosts.
const (
	Magic  = 0xcd
	KindQ  = 0x01
	KindAD = 0x02
)

// The tag protocol identifiers (EtherTypes) of the tags the mark carries.
const (
	TPID8021Q  = 0x8100
	TPID8021AD = 0x88a8
)

// Tag is a frame's (outer) VLAN tag: its TPID, TPID8021Q or TPID8021AD,
// and its VLAN id. The zero Tag is no tag.
type Tag struct {
	TPID uint16
	ID   uint16
}

// Tagged reports whether t is a tag.
func (t Tag) Tagged() bool { return t.ID != 0 }

// AppendTo appends the tag as it stands in an Ethernet header after the
// addresses (TPID, then the TCI with priority and DEI 0) to b; nothing
// when t is no tag.
func (t Tag) AppendTo(b []byte) []byte {
	if !t.Tagged() {
		return b
	}
	return append(b, byte(t.TPID>>8), byte(t.TPID), byte(t.ID>>8)&0x0f, byte(t.ID))
}

// AppendEthernet appends an Ethernet header from src to dst with the tag
// (none when t is no tag) and EtherType etherType to b.
func (t Tag) AppendEthernet(b []byte, dst, src [6]byte, etherType uint16) []byte {
	b = append(b, dst[:]...)
	b = append(b, src[:]...)
	b = t.AppendTo(b)
	return append(b, byte(etherType>>8), byte(etherType))
}

// String returns "802.1Q 10", "802.1ad 10" or "untagged".
func (t Tag) String() string {
	switch {
	case !t.Tagged():
		return "untagged"
	case t.TPID == TPID8021AD:
		return "802.1ad " + strconv.Itoa(int(t.ID))
	}
	return "802.1Q " + strconv.Itoa(int(t.ID))
}

// NftStatement returns the nft statement that writes the layout from a
// frame tagged with tpid (TPID8021Q or TPID8021AD): it loads the TCI and
// the two bytes after it (the inner EtherType), keeps the VLAN id and puts
// Magic and the kind in place of the EtherType. It goes after a match on
// such frames with a VLAN id.
func NftStatement(tpid uint16) string {
	kind := KindQ
	if tpid == TPID8021AD {
		kind = KindAD
	}
	return fmt.Sprintf("meta mark set @ll,112,32 & 0x0fff0000 | 0x0000%02x%02x", Magic, kind)
}

// Read returns the tag mark carries: the zero Tag when mark does not carry
// one in this layout (no tag, or a mark someone else set).
func Read(mark uint32) Tag {
	var b [4]byte
	binary.NativeEndian.PutUint32(b[:], mark)
	if b[2] != Magic || b[0]&0xf0 != 0 {
		return Tag{}
	}
	t := Tag{ID: binary.BigEndian.Uint16(b[:2])}
	switch b[3] {
	case KindQ:
		t.TPID = TPID8021Q
	case KindAD:
		t.TPID = TPID8021AD
	default:
		return Tag{}
	}
	if t.ID == 0 {
		return Tag{}
	}
	return t
}

// Mark returns the mark NftStatement writes for tag t (for tests and for
// reading a mark by hand).
func Mark(t Tag) uint32 {
	var b [4]byte
	binary.BigEndian.PutUint16(b[:2], t.ID&0x0fff)
	b[2], b[3] = Magic, KindQ
	if t.TPID == TPID8021AD {
		b[3] = KindAD
	}
	return binary.NativeEndian.Uint32(b[:])
}
