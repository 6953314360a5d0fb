package segment

import (
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// hotPackets are the packets the allocation tests and benchmarks use: the
// option-heavy segments a Linux peer sends.
func hotPackets() []struct {
	name string
	p    pkt
} {
	sackOpts := []layers.TCPOption{optNOP, optNOP, optTS(1, 2), optNOP, optNOP, optSACK(10, 20, 30, 40)}
	return []struct {
		name string
		p    pkt
	}{
		{"v4 SYN options", pkt{src: cli4, dst: dev4, flags: SYN, seq: 1, window: 64240, ttl: 64, opts: linuxSYN()}},
		{"v6 SYN options", pkt{src: cli6, dst: dev6, flags: SYN, seq: 1, window: 64800, ttl: 64, opts: linuxSYN()}},
		{"v4 ACK SACK", pkt{src: cli4, dst: dev4, flags: ACK, seq: 1, ack: 2, window: 502, ttl: 64, opts: sackOpts}},
		{"v6 data 1448", pkt{src: cli6, dst: dev6, flags: PSH | ACK, seq: 1, ack: 2, window: 502, ttl: 64, opts: []layers.TCPOption{optNOP, optNOP, optTS(1, 2)}, payload: payload(1448)}},
	}
}

func TestDecodeAllocs(t *testing.T) {
	for _, f := range framings {
		d := newDecoder(t, f.link)
		for _, c := range hotPackets() {
			frame := f.wrap(t, c.p.raw(t))
			var seg Segment
			if err := d.Decode(frame, &seg); err != nil { // warm-up
				t.Fatal(err)
			}
			n := testing.AllocsPerRun(200, func() {
				if err := d.Decode(frame, &seg); err != nil {
					t.Fatal(err)
				}
			})
			if n != 0 {
				t.Errorf("%s %s: Decode allocates %v times per packet, want 0", f.name, c.name, n)
			}
		}
		// Switching between packets (and to a non-TCP one) must not
		// allocate either once each kind has been seen.
		var frames [][]byte
		for _, c := range hotPackets() {
			frames = append(frames, f.wrap(t, c.p.raw(t)))
		}
		udp := f.wrap(t, ip4Of(t, layers.IPProtocolUDP, &layers.UDP{SrcPort: 1, DstPort: 2}, gopacket.Payload("x")))
		var seg Segment
		n := testing.AllocsPerRun(50, func() {
			for _, fr := range frames {
				if err := d.Decode(fr, &seg); err != nil {
					t.Fatal(err)
				}
			}
			if err := d.Decode(udp, &seg); err != ErrNotTCP {
				t.Fatalf("UDP: %v", err)
			}
		})
		if n != 0 {
			t.Errorf("%s: a mix of packets allocates %v times per round, want 0", f.name, n)
		}
	}
}

func TestRewriteAllocs(t *testing.T) {
	d := newDecoder(t, layers.LinkTypeRaw)
	for _, c := range hotPackets() {
		b := c.p.raw(t)
		var seg Segment
		if err := d.Decode(b, &seg); err != nil {
			t.Fatal(err)
		}
		for _, op := range []struct {
			name string
			do   func() error
		}{
			{"SetFlags", func() error { return SetFlags(b, &seg, RST|ACK) }},
			{"SetSeq", func() error { return SetSeq(b, &seg, 5) }},
			{"SetAck", func() error { return SetAck(b, &seg, 6) }},
			{"SetWindow", func() error { return SetWindow(b, &seg, 7) }},
			{"StripOptions", func() error { return StripOptions(b, &seg) }},
			{"FixChecksums", func() error { return FixChecksums(b, &seg) }},
			{"ChecksumsValid", func() error {
				if !ChecksumsValid(b, &seg) {
					t.Fatal("ChecksumsValid = false")
				}
				return nil
			}},
		} {
			n := testing.AllocsPerRun(200, func() {
				if err := op.do(); err != nil {
					t.Fatal(err)
				}
			})
			if n != 0 {
				t.Errorf("%s: %s allocates %v times, want 0", c.name, op.name, n)
			}
		}
	}
}

func TestBuildAllocs(t *testing.T) {
	buf := make([]byte, 0, 128)
	for _, c := range buildTemplates() {
		n := testing.AllocsPerRun(200, func() {
			if _, err := Build(buf, cliMAC, devMAC, &c.tpl); err != nil {
				t.Fatal(err)
			}
		})
		if n != 0 {
			t.Errorf("%s: Build into a 128-byte buffer allocates %v times, want 0", c.name, n)
		}
	}
}

func TestFlagsAppendToAllocs(t *testing.T) {
	buf := make([]byte, 0, 64)
	n := testing.AllocsPerRun(100, func() {
		for v := range 256 {
			buf = Flags(v).AppendTo(buf[:0])
		}
	})
	if n != 0 {
		t.Errorf("AppendTo allocates %v times per 256 calls, want 0", n)
	}
}

func BenchmarkDecode(b *testing.B) {
	for _, f := range framings {
		for _, c := range hotPackets() {
			b.Run(f.name+"/"+c.name, func(b *testing.B) {
				d := newDecoder(b, f.link)
				frame := f.wrap(b, c.p.raw(b))
				var seg Segment
				b.ReportAllocs()
				b.SetBytes(int64(len(frame)))
				for b.Loop() {
					if err := d.Decode(frame, &seg); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

func BenchmarkFixChecksums(b *testing.B) {
	d := newDecoder(b, layers.LinkTypeRaw)
	for _, c := range hotPackets() {
		b.Run(c.name, func(b *testing.B) {
			pk := c.p.raw(b)
			var seg Segment
			if err := d.Decode(pk, &seg); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.SetBytes(int64(len(pk)))
			for b.Loop() {
				if err := FixChecksums(pk, &seg); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkBuild(b *testing.B) {
	buf := make([]byte, 0, 128)
	tpl := &Template{Tuple: Tuple{Src: cli4, Dst: dev4}, Flags: RST | ACK, Seq: 1, Ack: 2}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Build(buf, cliMAC, devMAC, tpl); err != nil {
			b.Fatal(err)
		}
	}
}
