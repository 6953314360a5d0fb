package segment

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// rewrite is one change made both by the segment package (do) and on the
// packet description that gopacket then serialises (ref).
type rewrite struct {
	name string
	do   func(pkt []byte, seg *Segment) error
	ref  func(p *pkt)
}

func rewrites() []rewrite {
	return []rewrite{
		{"none", func([]byte, *Segment) error { return nil }, func(*pkt) {}},
		{"SetFlags RST+ACK", func(b []byte, s *Segment) error { return SetFlags(b, s, RST|ACK) }, func(p *pkt) { p.flags = RST | ACK }},
		{"SetFlags none", func(b []byte, s *Segment) error { return SetFlags(b, s, 0) }, func(p *pkt) { p.flags = 0 }},
		{"SetSeq", func(b []byte, s *Segment) error { return SetSeq(b, s, 0xfffffffe) }, func(p *pkt) { p.seq = 0xfffffffe }},
		{"SetAck", func(b []byte, s *Segment) error { return SetAck(b, s, 12345) }, func(p *pkt) { p.ack = 12345 }},
		{"SetWindow 0", func(b []byte, s *Segment) error { return SetWindow(b, s, 0) }, func(p *pkt) { p.window = 0 }},
		{"SetWindow max", func(b []byte, s *Segment) error { return SetWindow(b, s, 0xffff) }, func(p *pkt) { p.window = 0xffff }},
		{"StripOptions", StripOptions, stripRef},
		{"all", func(b []byte, s *Segment) error {
			for _, err := range []error{SetFlags(b, s, FIN|PSH|ACK), SetSeq(b, s, 1), SetAck(b, s, 2), SetWindow(b, s, 3), StripOptions(b, s)} {
				if err != nil {
					return err
				}
			}
			return nil
		}, func(p *pkt) { p.flags, p.seq, p.ack, p.window = FIN|PSH|ACK, 1, 2, 3; stripRef(p) }},
	}
}

// stripRef replaces p's options by as many NOPs as they took, padding
// included.
func stripRef(p *pkt) {
	n := p.want().TCPHeaderLen - 20
	p.opts = nil
	for range n {
		p.opts = append(p.opts, optNOP)
	}
}

func checksumBases() []pkt {
	var ps []pkt
	for _, n := range []int{0, 1, 2, 3, 37, 100, 1001} {
		ps = append(ps,
			pkt{src: cli4, dst: dev4, flags: PSH | ACK, seq: 100, ack: 200, window: 502, ttl: 64, id: 0x1234, opts: []layers.TCPOption{optNOP, optNOP, optTS(7, 8)}, payload: payload(n)},
			pkt{src: cli6, dst: dev6, flags: PSH | ACK, seq: 100, ack: 200, window: 502, ttl: 64, opts: []layers.TCPOption{optNOP, optNOP, optTS(7, 8)}, payload: payload(n)},
		)
	}
	return append(ps,
		pkt{src: cli4, dst: dev4, flags: SYN, seq: 0xffffffff, window: 64240, ttl: 64, opts: linuxSYN()},
		pkt{src: cli6, dst: dev6, flags: SYN, seq: 0xffffffff, window: 64240, ttl: 64, opts: linuxSYN()},
		pkt{src: dev4, dst: cli4, flags: SYN | ACK, window: 5840, ttl: 255, opts: []layers.TCPOption{optMSS(1460)}, ipOpts: []layers.IPv4Option{{OptionType: 148, OptionLength: 4, OptionData: []byte{0, 0}}}},
		pkt{src: cli6, dst: dev6, flags: ACK, ttl: 1, hbh: true, payload: payload(5)},
		pkt{src: dev4, dst: cli4, flags: SYN | ACK, window: 5840, ttl: 255, opts: []layers.TCPOption{optMSS(1460), optEOL}},
	)
}

// TestFixChecksumsMatchesGopacket rewrites fields in place, fixes the
// checksums and compares the bytes with gopacket serialising the changed
// packet with ComputeChecksums.
func TestFixChecksumsMatchesGopacket(t *testing.T) {
	d := newDecoder(t, layers.LinkTypeRaw)
	for _, base := range checksumBases() {
		for _, rw := range rewrites() {
			name := fmt.Sprintf("%v/%dB/%s", base.src.Addr(), len(base.payload), rw.name)
			t.Run(name, func(t *testing.T) {
				b := base.raw(t)
				var seg Segment
				if err := d.Decode(b, &seg); err != nil {
					t.Fatalf("Decode: %v", err)
				}
				// Spoil both checksums, so that only FixChecksums can make
				// them right.
				binary.BigEndian.PutUint16(b[seg.IPHeaderLen+16:], 0xdead)
				if b[0]>>4 == 4 {
					binary.BigEndian.PutUint16(b[10:], 0xbeef)
				}
				if err := rw.do(b, &seg); err != nil {
					t.Fatalf("rewrite: %v", err)
				}
				if err := FixChecksums(b, &seg); err != nil {
					t.Fatalf("FixChecksums: %v", err)
				}
				ref := base
				rw.ref(&ref)
				want := ref.raw(t)
				if diff := cmp.Diff(want, b); diff != "" {
					t.Errorf("bytes (-gopacket +FixChecksums):\n%s", diff)
				}
				if diff := cmp.Diff(ref.want(), seg, cmpAddr); diff != "" {
					t.Errorf("segment after rewrite (-want +got):\n%s", diff)
				}
				if !ChecksumsValid(b, &seg) {
					t.Error("ChecksumsValid = false after FixChecksums")
				}
				verifyWithGopacket(t, b)
			})
		}
	}
}

// verifyWithGopacket checks the IPv4 header and TCP checksums of a raw IP
// packet with gopacket's own code.
func verifyWithGopacket(t *testing.T, b []byte) {
	t.Helper()
	first := layers.LayerTypeIPv4
	if b[0]>>4 == 6 {
		first = layers.LayerTypeIPv6
	}
	pk := gopacket.NewPacket(b, first, gopacket.Default)
	if el := pk.ErrorLayer(); el != nil {
		t.Fatalf("gopacket: %v", el.Error())
	}
	if ip, ok := pk.NetworkLayer().(*layers.IPv4); ok {
		if err, res := ip.VerifyChecksum(); err != nil || !res.Valid {
			t.Errorf("gopacket: IPv4 header checksum %#04x, want %#04x (err %v)", res.Actual, res.Correct, err)
		}
	}
	tcp := pk.Layer(layers.LayerTypeTCP).(*layers.TCP)
	if err := tcp.SetNetworkLayerForChecksum(pk.NetworkLayer()); err != nil {
		t.Fatal(err)
	}
	// Summing a segment with its checksum in place gives 0 when it is right.
	if sum, err := tcp.ComputeChecksum(); err != nil || sum != 0 {
		t.Errorf("gopacket: TCP checksum over the segment = %#04x, want 0 (err %v)", sum, err)
	}
}

// onesSum is an independent one's-complement sum of b (RFC 1071), used to
// check the IPv4 header checksum without the package's code.
func onesSum(b []byte) uint16 {
	var s uint64
	for len(b) >= 2 {
		s += uint64(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		s += uint64(b[0]) << 8
	}
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return uint16(s)
}

// TestChecksumsValidDetectsEveryByte flips each byte the checksums cover,
// one at a time, and expects ChecksumsValid to notice; bytes no checksum
// covers (IPv6 traffic class, flow label, hop limit, next header) must
// not matter.
func TestChecksumsValidDetectsEveryByte(t *testing.T) {
	d := newDecoder(t, layers.LinkTypeRaw)
	for _, base := range checksumBases() {
		b := base.raw(t)
		var seg Segment
		if err := d.Decode(b, &seg); err != nil {
			t.Fatal(err)
		}
		if err := FixChecksums(b, &seg); err != nil {
			t.Fatal(err)
		}
		if !ChecksumsValid(b, &seg) {
			t.Fatalf("%v %dB: ChecksumsValid = false after FixChecksums", base.src.Addr(), len(base.payload))
		}
		if b[0]>>4 == 4 {
			if s := onesSum(b[:seg.IPHeaderLen]); s != 0xffff {
				t.Errorf("%v: IPv4 header sums to %#04x, want 0xffff", base.src.Addr(), s)
			}
		}
		for i := range b {
			for _, x := range []byte{0x01, 0x80, 0xff} {
				covered := true
				if b[0]>>4 == 6 {
					switch {
					case i == 0:
						covered = x&0xf0 != 0 // the version, not the traffic class
					case i < 4, i == 6, i == 7:
						covered = false
					case base.hbh && i >= 40 && i < 48:
						covered = false // Decode checks the hop-by-hop header
					}
				}
				c := bytes.Clone(b)
				c[i] ^= x
				if got := ChecksumsValid(c, &seg); got == covered {
					t.Errorf("%v %dB: byte %d ^ %#02x: ChecksumsValid = %v, want %v", base.src.Addr(), len(base.payload), i, x, got, !covered)
				}
			}
		}
	}
}

// TestChecksumErrors: FixChecksums refuses packets that do not match the
// Segment, and leaves them untouched; ChecksumsValid says false.
func TestChecksumErrors(t *testing.T) {
	d := newDecoder(t, layers.LinkTypeRaw)
	decode := func(p pkt) ([]byte, Segment) {
		b := p.raw(t)
		var s Segment
		if err := d.Decode(b, &s); err != nil {
			t.Fatal(err)
		}
		return b, s
	}
	b4, s4 := decode(pkt{src: cli4, dst: dev4, flags: ACK, ttl: 64, payload: payload(9)})
	b6, s6 := decode(pkt{src: cli6, dst: dev6, flags: ACK, ttl: 64, payload: payload(9)})
	b4opt, s4opt := decode(pkt{src: cli4, dst: dev4, flags: ACK, ttl: 64, ipOpts: []layers.IPv4Option{{OptionType: 148, OptionLength: 4, OptionData: []byte{0, 0}}}})
	cases := []struct {
		name string
		pkt  []byte
		seg  Segment
	}{
		{"empty", nil, s4},
		{"zero segment v4", b4, Segment{}},
		{"zero segment v6", b6, Segment{}},
		{"negative IP header length", b4, Segment{IPHeaderLen: -20, TCPHeaderLen: 20}},
		{"v4 packet, v6 segment", b4, s6},
		{"v6 packet, v4 segment", b6, s4},
		{"v4 IP options, segment without", b4opt, s4},
		{"v4 without options, segment with", b4, s4opt},
		{"v4 cut in the payload", b4[:len(b4)-1], s4},
		{"v4 cut in the header", b4[:10], s4},
		{"v6 cut in the payload", b6[:len(b6)-1], s6},
		{"v6 cut in the header", b6[:30], s6},
		{"version 5", append([]byte{0x55}, b4[1:]...), s4},
		{"v4 IHL 15 on a short packet", func() []byte { c := bytes.Clone(b4[:40]); c[0], c[3] = 0x4f, 40; return c }(), Segment{IPHeaderLen: 20, TCPHeaderLen: 20}},
		{"v4 total length below headers", func() []byte { c := bytes.Clone(b4); c[3] = 30; return c }(), s4},
		{"v6 payload length below TCP header", func() []byte { c := bytes.Clone(b6); c[5] = 10; return c }(), s6},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			orig := bytes.Clone(c.pkt)
			seg := c.seg
			if ChecksumsValid(c.pkt, &seg) {
				t.Error("ChecksumsValid = true")
			}
			if err := FixChecksums(c.pkt, &seg); err == nil {
				t.Error("FixChecksums succeeded, want an error")
			}
			if diff := cmp.Diff(orig, c.pkt); diff != "" {
				t.Errorf("FixChecksums changed the packet (-before +after):\n%s", diff)
			}
		})
	}
}

// TestSum16 checks the word-at-a-time sum against onesSum on random data
// of every length up to 130 octets, all-ones data (the most carries)
// included, with and without a starting sum.
func TestSum16(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for n := range 131 {
		for _, fillWith := range []func(b []byte){
			func(b []byte) { fill(r, b) },
			func(b []byte) {
				for i := range b {
					b[i] = 0xff
				}
			},
		} {
			b := make([]byte, n)
			fillWith(b)
			if got, want := sum16(0, b), uint32(onesSum(b)); got != want {
				t.Errorf("sum16 of %d octets %x = %#x, want %#x", n, b, got, want)
			}
			// A starting sum counts as one more word in front.
			start := uint32(r.IntN(0x10000))
			if got, want := sum16(start, b), uint32(onesSum(append([]byte{byte(start >> 8), byte(start)}, b...))); got != want {
				t.Errorf("sum16(%#x) of %d octets %x = %#x, want %#x", start, n, b, got, want)
			}
		}
	}
}

// TestRewriteKeepsChecksumsAsTheyWere: without FixChecksums, a rewrite of a
// segment whose checksum is right leaves it right (the bytes equal
// gopacket's serialisation of the changed packet), and a rewrite of one
// whose checksum is wrong leaves it wrong by the same one's-complement
// amount (RFC 1624): a corrupt segment does not become one the receiver
// accepts.
func TestRewriteKeepsChecksumsAsTheyWere(t *testing.T) {
	d := newDecoder(t, layers.LinkTypeRaw)
	for _, base := range checksumBases() {
		for _, rw := range rewrites() {
			name := fmt.Sprintf("%v/%dB/%s", base.src.Addr(), len(base.payload), rw.name)
			t.Run(name, func(t *testing.T) {
				b := base.raw(t)
				var seg Segment
				if err := d.Decode(b, &seg); err != nil {
					t.Fatalf("Decode: %v", err)
				}
				good := bytes.Clone(b)
				goodSeg := seg
				if err := rw.do(good, &goodSeg); err != nil {
					t.Fatalf("rewrite: %v", err)
				}
				ref := base
				rw.ref(&ref)
				if diff := cmp.Diff(ref.raw(t), good); diff != "" {
					t.Errorf("valid checksum, rewritten (-gopacket +incremental):\n%s", diff)
				}

				csum := b[seg.IPHeaderLen+16:]
				bad := binary.BigEndian.Uint16(csum) ^ 0x0f0f
				binary.BigEndian.PutUint16(csum, bad)
				if err := rw.do(b, &seg); err != nil {
					t.Fatalf("rewrite: %v", err)
				}
				if ChecksumsValid(b, &seg) {
					t.Fatal("a bad checksum became valid through the rewrite")
				}
				// Off by the same amount: stored - correct is what it was.
				right := binary.BigEndian.Uint16(good[goodSeg.IPHeaderLen+16:])
				got := binary.BigEndian.Uint16(b[seg.IPHeaderLen+16:])
				wantOff := onesDiff(bad, binary.BigEndian.Uint16(base.raw(t)[seg.IPHeaderLen+16:]))
				if off := onesDiff(got, right); off != wantOff {
					t.Errorf("checksum off by %#04x after the rewrite, %#04x before", off, wantOff)
				}
			})
		}
	}
}

// onesDiff is a - b in one's-complement arithmetic, with 0 and 0xffff
// both meaning no difference.
func onesDiff(a, b uint16) uint16 {
	s := uint32(a) + uint32(^b)
	s = s&0xffff + s>>16
	if s == 0xffff {
		return 0
	}
	return uint16(s)
}
