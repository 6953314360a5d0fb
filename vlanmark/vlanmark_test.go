package vlanmark

import (
	"encoding/binary"
	"encoding/hex"
	"strconv"
	"strings"
	"testing"
)

// TestReadReadsWhatTheRuleWrites replays NftStatement's arithmetic on the
// register bytes (load 4 bytes from offset 14 of the frame, AND, OR, store
// as the mark) and checks Read gives the tag back, whatever the priority
// bits and inner EtherType, and refuses marks that are not ours.
func TestReadReadsWhatTheRuleWrites(t *testing.T) {
	for _, tc := range []struct {
		name      string
		tpid      uint16
		tci       uint16
		etherType uint16
		want      Tag
	}{
		{"802.1Q 10 IPv4", TPID8021Q, 10, 0x0800, Tag{TPID8021Q, 10}},
		{"802.1Q 4094 IPv6 priority 7 DEI", TPID8021Q, 0xe000 | 0x1000 | 4094, 0x86dd, Tag{TPID8021Q, 4094}},
		{"802.1ad 1", TPID8021AD, 1, 0x0800, Tag{TPID8021AD, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := NftStatement(tc.tpid)
			// "meta mark set @ll,112,32 & 0x0fff0000 | 0x0000XXXX"
			or, err := strconv.ParseUint(st[strings.LastIndex(st, "0x")+2:], 16, 32)
			if err != nil {
				t.Fatal(err)
			}
			var reg [4]byte
			binary.BigEndian.PutUint16(reg[0:2], tc.tci)
			binary.BigEndian.PutUint16(reg[2:4], tc.etherType)
			v := binary.BigEndian.Uint32(reg[:])&0x0fff0000 | uint32(or) // constants in payload (big-endian) order
			binary.BigEndian.PutUint32(reg[:], v)
			mark := binary.NativeEndian.Uint32(reg[:])
			if got := Read(mark); got != tc.want {
				t.Fatalf("Read(%#x) = %v, want %v", mark, got, tc.want)
			}
			if Mark(tc.want) != mark {
				t.Errorf("Mark(%v) = %#x, the rule writes %#x", tc.want, Mark(tc.want), mark)
			}
		})
	}
	for _, m := range []uint32{0, 1, 2, 0xffffffff, Mark(Tag{TPID8021Q, 0})} {
		if tag := Read(m); tag.Tagged() || tag != (Tag{}) {
			t.Errorf("Read(%#x) = %v; want no tag", m, tag)
		}
	}
}

// TestAppendEthernet: the header's bytes with an 802.1Q, an 802.1ad and
// no tag.
func TestAppendEthernet(t *testing.T) {
	dst, src := [6]byte{2, 0, 0, 0, 0, 2}, [6]byte{2, 0, 0, 0, 0, 1}
	addrs := "020000000002020000000001"
	for _, c := range []struct {
		tag       Tag
		etherType uint16
		want      string
	}{
		{Tag{TPID8021Q, 10}, 0x0800, addrs + "8100000a0800"},
		{Tag{TPID8021AD, 4094}, 0x86dd, addrs + "88a80ffe86dd"},
		{Tag{}, 0x0800, addrs + "0800"},
	} {
		if got := hex.EncodeToString(c.tag.AppendEthernet([]byte{}, dst, src, c.etherType)); got != c.want {
			t.Errorf("%v: %s, want %s", c.tag, got, c.want)
		}
	}
}
