package vlanmark

import (
	"encoding/binary"
	"testing"
)

// TestIDReadsWhatTheRuleWrites replays NftStatement's arithmetic on the
// register bytes (load 4 bytes from offset 14 of the frame, AND, OR, store
// as the mark) and checks ID reads the VLAN id back, whatever the priority
// bits and inner EtherType, and refuses marks that are not ours.
func TestIDReadsWhatTheRuleWrites(t *testing.T) {
	for _, tc := range []struct {
		name      string
		tci       uint16
		etherType uint16
		want      uint16
	}{
		{"vlan 10 IPv4", 10, 0x0800, 10},
		{"vlan 4094 IPv6 priority 7 DEI", 0xe000 | 0x1000 | 4094, 0x86dd, 4094},
		{"vlan 1", 1, 0x0800, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var reg [4]byte
			binary.BigEndian.PutUint16(reg[0:2], tc.tci)
			binary.BigEndian.PutUint16(reg[2:4], tc.etherType)
			// & 0x0fff0000 | 0x0000cd01, constants in payload (big-endian) order
			v := binary.BigEndian.Uint32(reg[:])&0x0fff0000 | 0x0000cd01
			binary.BigEndian.PutUint32(reg[:], v)
			mark := binary.NativeEndian.Uint32(reg[:])
			got, ok := ID(mark)
			if !ok || got != tc.want {
				t.Fatalf("ID(%#x) = %d, %v; want %d, true", mark, got, ok, tc.want)
			}
			if Mark(tc.want) != mark {
				t.Errorf("Mark(%d) = %#x, the rule writes %#x", tc.want, Mark(tc.want), mark)
			}
		})
	}
	for _, m := range []uint32{0, 1, 2, 0xffffffff, Mark(0)} {
		if id, ok := ID(m); ok {
			t.Errorf("ID(%#x) = %d, true; want false", m, id)
		}
	}
}
