package segment

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// fuzzLinks are the framings FuzzDecode picks from with its link argument,
// with the length of their link header.
var fuzzLinks = [...]struct {
	link layers.LinkType
	hlen int
}{
	{layers.LinkTypeRaw, 0},
	{layers.LinkTypeEthernet, 14},
	{layers.LinkTypeLinuxSLL, 16},
	{layers.LinkTypeLinuxSLL2, 20},
	{layers.LinkTypeNull, 4},
	{linkTypeCHDLC, 4},
}

// FuzzDecode decodes arbitrary bytes under one of the framings and, when
// Decode accepts them, checks that the Segment agrees with the bytes at
// their offsets, that lengths add up to the IP length, that the raw IP
// packet alone decodes the same, and that rewriting and fixing checksums
// give a packet that verifies and decodes back to the rewritten Segment.
// The committed corpus is in testdata/fuzz/FuzzDecode.
func FuzzDecode(f *testing.F) {
	for _, c := range decodeCases() {
		f.Add(byte(0), c.p.raw(f))
	}
	for _, c := range hotPackets() {
		f.Add(byte(1), ethernet(f, c.p.raw(f)))
		f.Add(byte(2), sll(f, c.p.raw(f)))
		f.Add(byte(3), sll2(f, c.p.raw(f)))
	}
	tcp4 := decodeCase(f, "v4 PSH+ACK with timestamps and payload").raw(f)
	tcp6 := decodeCase(f, "v6 PSH+ACK payload").raw(f)
	f.Add(byte(1), deepTags(f, tcp4, 2))
	f.Add(byte(0), ip4Of(f, layers.IPProtocolGRE, gopacket.Payload(append([]byte{0, 0, 0x65, 0x58}, ethernet(f, tcp6)...))))
	f.Add(byte(0), ip6Of(f, layers.IPProtocolUDP, &layers.UDP{SrcPort: 1, DstPort: 4789}, gopacket.Payload(append(make([]byte, 8), ethernet(f, tcp4)...))))
	f.Add(byte(4), append([]byte{2, 0, 0, 0}, tcp4...))
	var decs [len(fuzzLinks)]*Decoder
	for i, l := range fuzzLinks {
		decs[i] = newDecoder(f, l.link)
	}
	f.Fuzz(func(t *testing.T, link byte, data []byte) {
		l := fuzzLinks[int(link)%len(fuzzLinks)]
		d := decs[int(link)%len(fuzzLinks)]
		var seg Segment
		err := d.Decode(data, &seg)
		if err != nil {
			return
		}
		if seg.PayloadLen < 0 || seg.TCPHeaderLen < 20 || seg.TCPHeaderLen > 60 || seg.IPHeaderLen < 20 || seg.WindowScale < -1 || seg.WindowScale > 14 {
			t.Fatalf("lengths out of range: %+v", seg)
		}
		if seg.Via&(ViaVLAN|ViaQinQ|ViaMPLS|ViaLLC|ViaPPPoE) != 0 || seg.Via.Tunnelled() {
			// The IP header is not at a fixed offset: a rewrite must
			// refuse a tunnelled segment and leave the bytes alone.
			if seg.Via.Tunnelled() {
				c := bytes.Clone(data)
				if SetFlags(c, &seg, ^seg.Flags) == nil || FixChecksums(c, &seg) == nil || !bytes.Equal(c, data) {
					t.Fatal("a tunnelled segment was rewritten")
				}
			}
			return
		}
		ip := data[l.hlen:]
		checkSegment(t, ip, &seg)

		// The IP packet alone decodes the same as the frame.
		if l.hlen != 0 {
			var raw Segment
			if err := decs[0].Decode(ip, &raw); err != nil {
				t.Fatalf("the frame decodes, its IP packet does not: %v", err)
			}
			if diff := cmp.Diff(seg, raw, cmpAddr); diff != "" {
				t.Fatalf("frame and IP packet decode differently (-frame +ip):\n%s", diff)
			}
		}

		// Fix checksums on a copy: only the checksum fields change, and
		// the result verifies. A packet cut short is refused untouched.
		c := bytes.Clone(ip)
		cut := ipLength(ip) > len(ip) || seg.Via&(ViaFragment|ViaZeroLength) != 0
		err = FixChecksums(c, &seg)
		if cut {
			if err == nil {
				t.Fatal("FixChecksums accepted a packet shorter than its IP length")
			}
			if !bytes.Equal(c, ip) {
				t.Fatal("FixChecksums failed but changed the packet")
			}
			return
		}
		if err != nil {
			t.Fatalf("FixChecksums: %v", err)
		}
		if !ChecksumsValid(c, &seg) {
			t.Fatal("ChecksumsValid = false after FixChecksums")
		}
		for i := range c {
			if c[i] != ip[i] && !(ip[0]>>4 == 4 && (i == 10 || i == 11)) && i != seg.IPHeaderLen+16 && i != seg.IPHeaderLen+17 {
				t.Fatalf("FixChecksums changed byte %d, which is no checksum", i)
			}
		}

		// Rewrite everything, fix, decode again: the same Segment.
		want := seg
		for _, err := range []error{
			SetFlags(c, &want, ^seg.Flags),
			SetSeq(c, &want, seg.Seq+1),
			SetAck(c, &want, ^seg.Ack),
			SetWindow(c, &want, ^seg.Window),
			StripOptions(c, &want),
			FixChecksums(c, &want),
		} {
			if err != nil {
				t.Fatalf("rewrite: %v", err)
			}
		}
		if !ChecksumsValid(c, &want) {
			t.Fatal("ChecksumsValid = false after rewrite and FixChecksums")
		}
		var again Segment
		if err := decs[0].Decode(c, &again); err != nil {
			t.Fatalf("rewritten packet does not decode: %v", err)
		}
		if diff := cmp.Diff(want, again, cmpAddr); diff != "" {
			t.Fatalf("rewritten packet decodes differently (-rewritten +decoded):\n%s", diff)
		}
	})
}

// ipLength returns the length an IP packet's header declares.
func ipLength(ip []byte) int {
	if ip[0]>>4 == 4 {
		return int(binary.BigEndian.Uint16(ip[2:4]))
	}
	return 40 + int(binary.BigEndian.Uint16(ip[4:6]))
}

// checkSegment checks a decoded Segment against the raw IP packet's bytes.
func checkSegment(t *testing.T, ip []byte, seg *Segment) {
	t.Helper()
	v4 := ip[0]>>4 == 4
	ihl := seg.IPHeaderLen
	switch {
	case v4 && ihl != int(ip[0]&0x0f)*4:
		t.Fatalf("IPHeaderLen %d, IHL says %d", ihl, int(ip[0]&0x0f)*4)
	case !v4 && (ip[0]>>4 != 6 || ihl < 40 || (ihl != 40) != (ip[6] != 6) || (ihl != 40) != (seg.Via&ViaIPv6Ext != 0)):
		t.Fatalf("IPv6 IPHeaderLen %d with next header %d", ihl, ip[6])
	}
	if seg.Via&ViaZeroLength == 0 && seg.IPHeaderLen+seg.TCPHeaderLen+seg.PayloadLen != ipLength(ip) {
		t.Fatalf("IPHeaderLen %d + TCPHeaderLen %d + PayloadLen %d != IP length %d", seg.IPHeaderLen, seg.TCPHeaderLen, seg.PayloadLen, ipLength(ip))
	}
	if ipLength(ip) == len(ip) && seg.IPHeaderLen+seg.TCPHeaderLen+seg.PayloadLen != len(ip) {
		t.Fatal("lengths do not add up to the packet")
	}
	if len(ip) < ihl+seg.TCPHeaderLen {
		t.Fatalf("headers (%d+%d) longer than the packet (%d)", ihl, seg.TCPHeaderLen, len(ip))
	}
	tcp := ip[ihl:]
	var src, dst netip.Addr
	ttl := ip[8]
	if v4 {
		src, dst = netip.AddrFrom4([4]byte(ip[12:16])), netip.AddrFrom4([4]byte(ip[16:20]))
		if ip[9] != 6 || binary.BigEndian.Uint16(ip[6:8])&0x1fff != 0 || (binary.BigEndian.Uint16(ip[6:8])&0x2000 != 0) != (seg.Via&ViaFragment != 0) {
			t.Fatalf("decoded protocol %d, fragment field %#04x", ip[9], binary.BigEndian.Uint16(ip[6:8]))
		}
	} else {
		src, dst = netip.AddrFrom16([16]byte(ip[8:24])), netip.AddrFrom16([16]byte(ip[24:40]))
		ttl = ip[7]
	}
	want := Segment{
		Src:          netip.AddrPortFrom(src, binary.BigEndian.Uint16(tcp[0:])),
		Dst:          netip.AddrPortFrom(dst, binary.BigEndian.Uint16(tcp[2:])),
		Flags:        Flags(tcp[13]),
		Seq:          Seq(binary.BigEndian.Uint32(tcp[4:])),
		Ack:          Seq(binary.BigEndian.Uint32(tcp[8:])),
		Window:       binary.BigEndian.Uint16(tcp[14:]),
		PayloadLen:   seg.PayloadLen,
		WindowScale:  seg.WindowScale,
		MSS:          seg.MSS,
		TTL:          ttl,
		IPHeaderLen:  ihl,
		TCPHeaderLen: int(tcp[12]>>4) * 4,
		Via:          seg.Via & (ViaIPv6Ext | ViaFragment | ViaZeroLength),
	}
	if diff := cmp.Diff(want, *seg, cmpAddr); diff != "" {
		t.Fatalf("segment against the bytes (-bytes +decoded):\n%s", diff)
	}
	if seg.WindowScale < -1 || seg.WindowScale > 14 {
		t.Fatalf("WindowScale %d out of range", seg.WindowScale)
	}
}
