package segment

import (
	"bytes"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/gopacket/gopacket/layers"
)

// TestRewriteErrors: the rewrite functions refuse a Segment that does not
// place a whole TCP header inside the packet, and change nothing then.
func TestRewriteErrors(t *testing.T) {
	p := pkt{src: cli4, dst: dev4, flags: SYN, ttl: 64, opts: linuxSYN()}
	b := p.raw(t)
	var good Segment
	if err := newDecoder(t, layers.LinkTypeRaw).Decode(b, &good); err != nil {
		t.Fatal(err)
	}
	segs := []struct {
		name string
		pkt  []byte
		seg  Segment
	}{
		{"zero segment", b, Segment{}},
		{"IP header shorter than 20", b, Segment{IPHeaderLen: 10, TCPHeaderLen: 20}},
		{"negative IP header length", b, Segment{IPHeaderLen: -20, TCPHeaderLen: 20}},
		{"TCP header shorter than 20", b, Segment{IPHeaderLen: 20, TCPHeaderLen: 12}},
		{"TCP header longer than 60", b, Segment{IPHeaderLen: 20, TCPHeaderLen: 64}},
		{"packet cut inside the options", b[:50], good},
		{"packet cut inside the header", b[:30], good},
	}
	ops := []struct {
		name string
		do   func([]byte, *Segment) error
	}{
		{"SetFlags", func(b []byte, s *Segment) error { return SetFlags(b, s, RST) }},
		{"SetSeq", func(b []byte, s *Segment) error { return SetSeq(b, s, 1) }},
		{"SetAck", func(b []byte, s *Segment) error { return SetAck(b, s, 1) }},
		{"SetWindow", func(b []byte, s *Segment) error { return SetWindow(b, s, 1) }},
		{"StripOptions", StripOptions},
		{"SetSrcPort", func(b []byte, s *Segment) error { return SetSrcPort(b, s, 1) }},
		{"SetDstPort", func(b []byte, s *Segment) error { return SetDstPort(b, s, 1) }},
	}
	for _, c := range segs {
		for _, op := range ops {
			t.Run(c.name+"/"+op.name, func(t *testing.T) {
				orig := bytes.Clone(c.pkt)
				seg := c.seg
				if err := op.do(c.pkt, &seg); err == nil {
					t.Fatal("succeeded, want an error")
				}
				if diff := cmp.Diff(orig, c.pkt); diff != "" {
					t.Errorf("packet changed (-before +after):\n%s", diff)
				}
				if diff := cmp.Diff(c.seg, seg, cmpAddr); diff != "" {
					t.Errorf("segment changed (-before +after):\n%s", diff)
				}
			})
		}
	}
}

// TestStripOptionsBytes checks the exact bytes StripOptions leaves: NOPs
// over the whole option area, the checksum updated to match, everything
// else as it was.
func TestStripOptionsBytes(t *testing.T) {
	for _, p := range []pkt{
		{src: cli4, dst: dev4, flags: SYN, ttl: 64, opts: linuxSYN(), payload: payload(3)},
		{src: cli6, dst: dev6, flags: SYN, ttl: 64, hbh: true, opts: []layers.TCPOption{optMSS(1440), optWS(2)}},
		{src: cli4, dst: dev4, flags: ACK, ttl: 64},
	} {
		b := p.raw(t)
		var seg Segment
		if err := newDecoder(t, layers.LinkTypeRaw).Decode(b, &seg); err != nil {
			t.Fatal(err)
		}
		want := bytes.Clone(b)
		for i := seg.IPHeaderLen + 20; i < seg.IPHeaderLen+seg.TCPHeaderLen; i++ {
			want[i] = 1
		}
		if err := StripOptions(b, &seg); err != nil {
			t.Fatal(err)
		}
		if !ChecksumsValid(b, &seg) {
			t.Errorf("%v: checksum not updated by StripOptions", p.src)
		}
		copy(want[seg.IPHeaderLen+16:seg.IPHeaderLen+18], b[seg.IPHeaderLen+16:])
		if diff := cmp.Diff(want, b); diff != "" {
			t.Errorf("%v: bytes (-want +got):\n%s", p.src, diff)
		}
		if seg.WindowScale != -1 || seg.MSS != 0 {
			t.Errorf("%v: after StripOptions WindowScale %d MSS %d, want -1 and 0", p.src, seg.WindowScale, seg.MSS)
		}
	}
}

// TestSetPorts: the port setters change the two bytes of their port and
// the Segment and the checksum, and the packet decodes to the new ports
// with valid checksums.
func TestSetPorts(t *testing.T) {
	for _, p := range []pkt{
		{src: cli4, dst: dev4, flags: SYN, ttl: 64, opts: linuxSYN(), payload: payload(3)},
		{src: cli6, dst: dev6, flags: ACK, ttl: 64, hbh: true},
	} {
		b := p.raw(t)
		dec := newDecoder(t, layers.LinkTypeRaw)
		var seg Segment
		if err := dec.Decode(b, &seg); err != nil {
			t.Fatal(err)
		}
		want := bytes.Clone(b)
		want[seg.IPHeaderLen], want[seg.IPHeaderLen+1] = 0xee, 0x48   // 61000
		want[seg.IPHeaderLen+2], want[seg.IPHeaderLen+3] = 0x1f, 0x90 // 8080
		if err := SetSrcPort(b, &seg, 61000); err != nil {
			t.Fatal(err)
		}
		if err := SetDstPort(b, &seg, 8080); err != nil {
			t.Fatal(err)
		}
		if !ChecksumsValid(b, &seg) {
			t.Errorf("%v: checksum not updated by the port setters", p.src)
		}
		copy(want[seg.IPHeaderLen+16:seg.IPHeaderLen+18], b[seg.IPHeaderLen+16:])
		if diff := cmp.Diff(want, b); diff != "" {
			t.Errorf("%v: bytes (-want +got):\n%s", p.src, diff)
		}
		if err := FixChecksums(b, &seg); err != nil {
			t.Fatal(err)
		}
		var got Segment
		if err := dec.Decode(b, &got); err != nil {
			t.Fatal(err)
		}
		if got.Src.Port() != 61000 || got.Dst.Port() != 8080 || seg.Src.Port() != 61000 || seg.Dst.Port() != 8080 {
			t.Errorf("%v: decoded ports %d > %d, segment %d > %d, want 61000 > 8080", p.src, got.Src.Port(), got.Dst.Port(), seg.Src.Port(), seg.Dst.Port())
		}
		if !ChecksumsValid(b, &got) {
			t.Errorf("%v: checksums invalid after FixChecksums", p.src)
		}
	}
}
