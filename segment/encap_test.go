package segment

import (
	"encoding/binary"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// TestDecodeEncapsulated: TCP behind VLAN tags, MPLS, LLC/SNAP, PPPoE,
// IPv6 extension headers and tunnels decodes to the inner segment, with
// Via (and the VLAN IDs) saying what it came through.
func TestDecodeEncapsulated(t *testing.T) {
	p4 := pkt{src: cli4, dst: dev4, flags: PSH | ACK, seq: 100, ack: 200, window: 502, ttl: 64, opts: []layers.TCPOption{optNOP, optNOP, optTS(7, 8)}, payload: payload(77)}
	p6 := pkt{src: cli6, dst: dev6, flags: ACK, seq: 1, ack: 2, window: 500, ttl: 64, payload: payload(5)}
	tcp4, tcp6 := p4.raw(t), p6.raw(t)
	eth := func(typ layers.EthernetType, ls ...gopacket.SerializableLayer) []byte {
		return serialize(t, append([]gopacket.SerializableLayer{&layers.Ethernet{SrcMAC: cliMAC, DstMAC: devMAC, EthernetType: typ}}, ls...)...)
	}
	u16 := func(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }
	cat := func(bs ...[]byte) []byte {
		var out []byte
		for _, b := range bs {
			out = append(out, b...)
		}
		return out
	}
	// ext6 puts IPv6 extension headers between the IPv6 header of tcp6 and
	// its TCP header; each is given as (next header code, bytes).
	ext6 := func(first byte, exts ...[]byte) []byte {
		b := append([]byte(nil), tcp6[:40]...)
		b[6] = first
		for _, e := range exts {
			b = append(b, e...)
		}
		b = append(b, tcp6[40:]...)
		binary.BigEndian.PutUint16(b[4:], uint16(len(b)-40))
		return b
	}
	dstOpts := []byte{43, 0, 1, 4, 0, 0, 0, 0}                                                 // next: routing; PadN
	routing := []byte{44, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0} // type 0, 24 octets; next: fragment
	fragment := []byte{6, 0, 0, 0, 0, 0, 0, 1}                                                 // atomic: offset 0, no more fragments
	firstFrag := []byte{6, 0, 0, 1, 0, 0, 0, 2}                                                // offset 0, more fragments
	ah := []byte{6, 4, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}       // 24 octets; next: TCP
	v4frag := append([]byte(nil), tcp4...)
	v4frag[6] |= 0x20 // more fragments, offset 0 (DF cleared below)
	v4frag[6] &^= 0x40
	vxlan := cat([]byte{8, 0, 0, 0, 0, 0, 42, 0}, ethernet(t, tcp4))
	geneve := cat([]byte{0, 0, 0x65, 0x58, 0, 0, 42, 0}, ethernet(t, tcp6))
	geneveOpts := cat([]byte{2, 0, 0x86, 0xdd, 0, 0, 42, 0}, make([]byte, 8), tcp6) // 8 octets of options, then IPv6
	mplsIP := cat([]byte{0, 1, 0x10, 64, 0, 2, 0x21, 64}, tcp4)                     // two labels, the second at the bottom
	mplsPW := cat([]byte{0, 3, 0x01, 64}, make([]byte, 4), ethernet(t, tcp6))       // one label, control word, Ethernet
	pppoe := cat([]byte{0x11, 0, 0, 1}, u16(uint16(len(tcp6)+2)), []byte{0, 0x57}, tcp6)
	snap := cat([]byte{0xaa, 0xaa, 3, 0, 0, 0, 0x08, 0}, tcp4)
	gre := func(flags uint16, typ uint16, extra int, inner []byte) []byte {
		return cat(u16(flags), u16(typ), make([]byte, extra), inner)
	}
	cases := []struct {
		name  string
		link  layers.LinkType
		frame []byte
		p     pkt
		via   Via
		vlan  [2]uint16
		ext   int // IPv6 extension header octets
	}{
		{"802.1Q", layers.LinkTypeEthernet, eth(layers.EthernetTypeDot1Q, &layers.Dot1Q{VLANIdentifier: 7, Priority: 5, Type: layers.EthernetTypeIPv4}, gopacket.Payload(tcp4)), p4, ViaVLAN, [2]uint16{7, 0}, 0},
		{"802.1ad and 802.1Q (QinQ)", layers.LinkTypeEthernet, eth(layers.EthernetTypeQinQ, &layers.Dot1Q{VLANIdentifier: 100, Type: layers.EthernetTypeDot1Q}, &layers.Dot1Q{VLANIdentifier: 4094, Type: layers.EthernetTypeIPv6}, gopacket.Payload(tcp6)), p6, ViaQinQ | ViaVLAN, [2]uint16{100, 4094}, 0},
		{"802.1Q in SLL2", layers.LinkTypeLinuxSLL2, func() []byte {
			b := sll2(t, cat([]byte{0, 9}, u16(0x0800), tcp4))
			binary.BigEndian.PutUint16(b, 0x8100)
			return b
		}(), p4, ViaVLAN, [2]uint16{9, 0}, 0},
		{"MPLS label stack", layers.LinkTypeEthernet, cat(ethernet(t, nil)[:12], u16(0x8847), mplsIP), p4, ViaMPLS, [2]uint16{}, 0},
		{"MPLS pseudowire with control word", layers.LinkTypeEthernet, cat(ethernet(t, nil)[:12], u16(0x8847), mplsPW), p6, ViaMPLS, [2]uint16{}, 0},
		{"802.3 LLC/SNAP", layers.LinkTypeEthernet, cat(ethernet(t, nil)[:12], u16(uint16(len(snap))), snap), p4, ViaLLC, [2]uint16{}, 0},
		{"PPPoE session", layers.LinkTypeEthernet, cat(ethernet(t, nil)[:12], u16(0x8864), pppoe), p6, ViaPPPoE, [2]uint16{}, 0},
		{"IPv4 in IPv4", layers.LinkTypeRaw, ip4Of(t, layers.IPProtocolIPv4, gopacket.Payload(tcp4)), p4, ViaIPinIP, [2]uint16{}, 0},
		{"IPv6 in IPv4 (6in4)", layers.LinkTypeRaw, ip4Of(t, layers.IPProtocolIPv6, gopacket.Payload(tcp6)), p6, ViaIPinIP, [2]uint16{}, 0},
		{"IPv4 in IPv6", layers.LinkTypeRaw, ip6Of(t, layers.IPProtocolIPv4, gopacket.Payload(tcp4)), p4, ViaIPinIP, [2]uint16{}, 0},
		{"GRE with IPv4", layers.LinkTypeRaw, ip4Of(t, layers.IPProtocolGRE, gopacket.Payload(gre(0, 0x0800, 0, tcp4))), p4, ViaGRE, [2]uint16{}, 0},
		{"GRE with checksum, key and sequence, IPv6", layers.LinkTypeEthernet, ethernet(t, ip4Of(t, layers.IPProtocolGRE, gopacket.Payload(gre(0xb000, 0x86dd, 12, tcp6)))), p6, ViaGRE, [2]uint16{}, 0},
		{"GRE with Ethernet (gretap) and a VLAN tag", layers.LinkTypeRaw, ip6Of(t, layers.IPProtocolGRE, gopacket.Payload(gre(0, 0x6558, 0, eth(layers.EthernetTypeDot1Q, &layers.Dot1Q{VLANIdentifier: 3, Type: layers.EthernetTypeIPv4}, gopacket.Payload(tcp4))))), p4, ViaGRE | ViaVLAN, [2]uint16{3, 0}, 0},
		{"ERSPAN type II", layers.LinkTypeRaw, ip4Of(t, layers.IPProtocolGRE, gopacket.Payload(gre(0x1000, 0x88be, 4+8, ethernet(t, tcp4)))), p4, ViaGRE, [2]uint16{}, 0},
		{"PPTP enhanced GRE", layers.LinkTypeRaw, ip4Of(t, layers.IPProtocolGRE, gopacket.Payload(gre(0x3081, 0x880b, 12, cat([]byte{0xff, 3, 0, 0x21}, tcp4)))), p4, ViaGRE, [2]uint16{}, 0},
		{"VXLAN", layers.LinkTypeEthernet, ethernet(t, ip4Of(t, layers.IPProtocolUDP, &layers.UDP{SrcPort: 51000, DstPort: 4789}, gopacket.Payload(vxlan))), p4, ViaVXLAN, [2]uint16{}, 0},
		{"Geneve with Ethernet", layers.LinkTypeRaw, ip6Of(t, layers.IPProtocolUDP, &layers.UDP{SrcPort: 51000, DstPort: 6081}, gopacket.Payload(geneve)), p6, ViaGeneve, [2]uint16{}, 0},
		{"Geneve with options and IPv6", layers.LinkTypeRaw, ip4Of(t, layers.IPProtocolUDP, &layers.UDP{SrcPort: 51000, DstPort: 6081}, gopacket.Payload(geneveOpts)), p6, ViaGeneve, [2]uint16{}, 0},
		{"IPv6 Destination Options, Routing, Fragment", layers.LinkTypeRaw, ext6(60, dstOpts, routing, fragment), p6, ViaIPv6Ext, [2]uint16{}, 40},
		{"IPv6 Authentication Header", layers.LinkTypeEthernet, ethernet(t, ext6(51, ah)), p6, ViaIPv6Ext, [2]uint16{}, 24},
		{"IPv6 first fragment", layers.LinkTypeRaw, ext6(44, firstFrag), p6, ViaIPv6Ext | ViaFragment, [2]uint16{}, 8},
		{"IPv4 first fragment", layers.LinkTypeRaw, v4frag, p4, ViaFragment, [2]uint16{}, 0},
		{"BSD loopback, little-endian AF_INET", layers.LinkTypeNull, cat([]byte{2, 0, 0, 0}, tcp4), p4, 0, [2]uint16{}, 0},
		{"BSD loopback, big-endian AF_INET6 (Darwin)", layers.LinkTypeNull, cat([]byte{0, 0, 0, 30}, tcp6), p6, 0, [2]uint16{}, 0},
		{"OpenBSD loopback", linkTypeLoop, cat([]byte{0, 0, 0, 24}, tcp6), p6, 0, [2]uint16{}, 0},
		{"Cisco HDLC", linkTypeCHDLC, cat([]byte{0x0f, 0}, u16(0x0800), tcp4), p4, 0, [2]uint16{}, 0},
		{"PPP", layers.LinkTypePPP, cat([]byte{0xff, 3, 0, 0x57}, tcp6), p6, 0, [2]uint16{}, 0},
		{"NFLOG", linkTypeNFLOG, nflog(2, tcp4), p4, 0, [2]uint16{}, 0},
		{"PPP with MPLS", layers.LinkTypePPP, cat([]byte{0xff, 3, 0x02, 0x81}, mplsIP), p4, ViaMPLS, [2]uint16{}, 0},
		{"GRE with WCCPv2 redirect header", layers.LinkTypeRaw, ip4Of(t, layers.IPProtocolGRE, gopacket.Payload(gre(0, 0x883e, 4, tcp4))), p4, ViaGRE, [2]uint16{}, 0},
		{"PKTAP with Ethernet inside", linkTypePKTAP, func() []byte {
			h := make([]byte, 108) // Darwin's header length
			binary.LittleEndian.PutUint32(h, 108)
			binary.LittleEndian.PutUint32(h[4:], 1)
			binary.LittleEndian.PutUint32(h[8:], 1) // DLT_EN10MB
			return cat(h, ethernet(t, tcp4))
		}(), p4, 0, [2]uint16{}, 0},
		{"Solaris ipnet IPv6", linkTypeIPNet, cat([]byte{1, 26}, make([]byte, 22), tcp6), p6, 0, [2]uint16{}, 0},
		{"IP over InfiniBand", linkTypeIPoIB, cat(make([]byte, 40), u16(0x86dd), []byte{0, 0}, tcp6), p6, 0, [2]uint16{}, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := newDecoder(t, c.link)
			got := Segment{Via: 0xffff, VLAN: 1, InnerVLAN: 1} // stale values must go
			if err := d.Decode(c.frame, &got); err != nil {
				t.Fatalf("Decode: %v", err)
			}
			want := c.p.want()
			want.Via = c.via
			want.VLAN, want.InnerVLAN = c.vlan[0], c.vlan[1]
			want.IPHeaderLen += c.ext
			if diff := cmp.Diff(want, got, cmpAddr); diff != "" {
				t.Errorf("segment (-want +got):\n%s", diff)
			}
			if got.Via.Tunnelled() || got.Via&ViaFragment != 0 {
				if err := SetFlags(append([]byte(nil), c.frame...), &got, RST); err == nil {
					t.Error("SetFlags accepted a tunnelled or fragmented segment")
				}
			}
			// Every prefix cut inside the headers is an error, never a
			// segment and never a panic.
			hdrs := len(c.frame) - want.PayloadLen
			for n := range hdrs {
				if err := d.Decode(c.frame[:n], &got); err == nil {
					t.Fatalf("cut at %d of %d header octets: decoded", n, hdrs)
				}
			}
		})
	}
}

// nflog builds a Linux NFLOG record: family, version, resource ID, a
// prefix TLV, then the payload TLV (lengths little-endian).
func nflog(family byte, ip []byte) []byte {
	b := []byte{family, 0, 0, 0}
	b = append(b, 9, 0, 10, 0, 'x', 'y', 'z', 'w', 0, 0, 0, 0) // NFULA_PREFIX, "xyzw\0", padded
	b = b[:4+12]
	b[4], b[6] = 9, 10
	l := 4 + len(ip)
	b = append(b, byte(l), byte(l>>8), 9, 0)
	return append(b, ip...)
}

// TestDecodeIPv6ExtensionsBeforeTCP is issue 12's defect: TCP behind
// Destination Options, Routing or an atomic Fragment header was counted as
// non-TCP, so a drop rule never saw it.
func TestDecodeIPv6ExtensionsBeforeTCP(t *testing.T) {
	p := pkt{src: cli6, dst: dev6, flags: FIN | ACK, seq: 9, ack: 10, ttl: 64}
	raw := p.raw(t)
	for _, c := range []struct {
		name string
		code byte
		ext  []byte
	}{
		{"destination options", 60, []byte{6, 0, 1, 4, 0, 0, 0, 0}},
		{"routing (segment routing, empty)", 43, []byte{6, 0, 4, 0, 0, 0, 0, 0}},
		{"atomic fragment", 44, []byte{6, 0, 0, 0, 0, 0, 0, 7}},
	} {
		b := append(append(append([]byte(nil), raw[:40]...), c.ext...), raw[40:]...)
		b[6] = c.code
		binary.BigEndian.PutUint16(b[4:], uint16(len(b)-40))
		var seg Segment
		if err := newDecoder(t, layers.LinkTypeRaw).Decode(b, &seg); err != nil {
			t.Fatalf("%s: Decode = %v, want the FIN", c.name, err)
		}
		if seg.Flags != FIN|ACK || seg.IPHeaderLen != 48 || seg.PayloadLen != 0 || seg.Via != ViaIPv6Ext {
			t.Errorf("%s: got %+v", c.name, seg)
		}
		// The rewrite path works on it: it is the outer IP header's TCP.
		if err := SetFlags(b, &seg, RST|ACK); err != nil {
			t.Fatalf("%s: SetFlags: %v", c.name, err)
		}
		if err := FixChecksums(b, &seg); err != nil || !ChecksumsValid(b, &seg) {
			t.Fatalf("%s: checksums after rewrite: %v", c.name, err)
		}
	}
}

// TestDecodeZeroLength: an IP length field of 0 (TSO or BIG TCP in a
// capture) takes the length from the frame; a jumbo payload option gives it.
func TestDecodeZeroLength(t *testing.T) {
	p4 := pkt{src: cli4, dst: dev4, flags: PSH | ACK, seq: 1, ack: 2, ttl: 64, payload: payload(3000)}
	p6 := pkt{src: cli6, dst: dev6, flags: PSH | ACK, seq: 1, ack: 2, ttl: 64, payload: payload(3000)}
	b4, b6 := p4.raw(t), p6.raw(t)
	b4[2], b4[3] = 0, 0
	b6[4], b6[5] = 0, 0
	// A jumbo option in a hop-by-hop header, as RFC 2675 has it.
	j := append(append([]byte(nil), b6[:40]...), 6, 0, 0xc2, 4, 0, 0, 0, 0)
	j = append(j, b6[40:]...)
	j[6] = 0
	binary.BigEndian.PutUint32(j[44:], uint32(len(j)-40))
	jumboLonger := append(append([]byte(nil), j...), make([]byte, 10)...) // trailing octets beyond the jumbo length
	for _, c := range []struct {
		name string
		link layers.LinkType
		b    []byte
		want Segment
	}{
		{"v4 TSO", layers.LinkTypeRaw, b4, withVia(p4.want(), ViaZeroLength)},
		{"v4 TSO in Ethernet", layers.LinkTypeEthernet, ethernet(t, b4), withVia(p4.want(), ViaZeroLength)},
		{"v6 BIG TCP without jumbo option", layers.LinkTypeRaw, b6, withVia(p6.want(), ViaZeroLength)},
		{"v6 jumbo option", layers.LinkTypeRaw, jumboLonger, func() Segment {
			s := p6.want()
			s.IPHeaderLen, s.Via = 48, ViaIPv6Ext
			return s
		}()},
	} {
		var got Segment
		if err := newDecoder(t, c.link).Decode(c.b, &got); err != nil {
			t.Fatalf("%s: Decode: %v", c.name, err)
		}
		if diff := cmp.Diff(c.want, got, cmpAddr); diff != "" {
			t.Errorf("%s: segment (-want +got):\n%s", c.name, diff)
		}
	}
}

func withVia(s Segment, v Via) Segment { s.Via = v; return s }

// TestDecodeWire: a frame shorter on the wire than its IP length gets its
// payload capped at what the wire carried, so a pure ACK whose IP length
// claims more is still a pure ACK; a capture cut by its snap length (wire
// length intact) keeps the payload its IP header declares.
func TestDecodeWire(t *testing.T) {
	ack := pkt{src: cli4, dst: dev4, flags: ACK, seq: 1, ack: 2, ttl: 64}
	b := ethernet(t, ack.raw(t))
	if len(b) != 60 {
		t.Fatalf("frame of %d octets, want the Ethernet minimum of 60", len(b))
	}
	binary.BigEndian.PutUint16(b[14+2:], 40+20) // IP length claims 20 octets of payload; the wire had 6 of padding
	d := newDecoder(t, layers.LinkTypeEthernet)
	var got Segment
	if err := d.DecodeWire(b, len(b), &got); err != nil {
		t.Fatalf("DecodeWire: %v", err)
	}
	if got.PayloadLen != 6 || got.Via != ViaCapped {
		t.Errorf("capped ACK: PayloadLen %d, Via %v; want 6 (as Wireshark), capped", got.PayloadLen, got.Via)
	}
	if err := SetFlags(b, &got, RST); err == nil {
		t.Error("SetFlags accepted a capped segment")
	}
	// Decode (wire length unknown) trusts the IP header.
	if err := d.Decode(b, &got); err != nil || got.PayloadLen != 20 {
		t.Errorf("Decode: PayloadLen %d, %v; want 20", got.PayloadLen, err)
	}
	// Snap length cut: 1448 octets on the wire, 54 captured.
	data := ethernet(t, (&pkt{src: cli4, dst: dev4, flags: ACK, seq: 1, ack: 2, ttl: 64, payload: payload(1448)}).raw(t))
	if err := d.DecodeWire(data[:54], len(data), &got); err != nil || got.PayloadLen != 1448 || got.Via != 0 {
		t.Errorf("snap-length cut: PayloadLen %d, Via %v, %v; want 1448, plain", got.PayloadLen, got.Via, err)
	}
	// A snap length that cuts the TCP options: the fixed header decodes,
	// options unread; Decode, not told the wire length, refuses it.
	syn := ethernet(t, (&pkt{src: cli4, dst: dev4, flags: SYN, seq: 7, ttl: 64, opts: linuxSYN()}).raw(t))
	if err := d.DecodeWire(syn[:14+20+24], len(syn), &got); err != nil || got.Flags != SYN || got.Seq != 7 || got.TCPHeaderLen != 40 || got.MSS != 1460 || got.WindowScale != -1 || got.Via != ViaCutHeader {
		t.Errorf("cut options: %+v, %v; want the SYN with its MSS and no window scale, cut-header", got, err)
	}
	if err := d.Decode(syn[:14+20+24], &got); err == nil {
		t.Error("Decode accepted a cut TCP header")
	}
	if err := d.DecodeWire(syn[:14+20+19], len(syn), &got); err == nil {
		t.Error("DecodeWire accepted 19 octets of TCP header")
	}
	// Ethernet padding on the wire is not payload either.
	padded := append(ethernet(t, ack.raw(t)), make([]byte, 6)...)
	if err := d.DecodeWire(padded, len(padded), &got); err != nil || got.PayloadLen != 0 || got.Via != 0 {
		t.Errorf("padded ACK: PayloadLen %d, Via %v, %v; want 0, plain", got.PayloadLen, got.Via, err)
	}
}

func TestViaString(t *testing.T) {
	for v, want := range map[Via]string{0: "plain", ViaVLAN: "vlan", ViaQinQ | ViaVLAN | ViaGRE: "vlan+qinq+gre", ViaCapped: "capped"} {
		if got := v.String(); got != want {
			t.Errorf("Via(%#x).String() = %q, want %q", uint16(v), got, want)
		}
	}
	if len(ViaNames()) != 14 || ViaNames()[13] != "cut-header" {
		t.Errorf("ViaNames() = %v", ViaNames())
	}
}
