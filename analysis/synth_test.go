package analysis

import (
	"encoding/binary"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/closeduel/closeduel/segment"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// synthPkt is one segment of a made-up capture.
type synthPkt struct {
	t       int64 // ns since the Unix epoch
	seg     segment.Segment
	comment string
}

// synth builds made-up captures segment by segment, for tests where a
// real stack cannot be made to misbehave on cue.
type synth struct {
	t    int64
	pkts []synthPkt
}

var synthEpoch = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).UnixNano()

func newSynth() *synth { return &synth{t: synthEpoch} }

// flow is one 4-tuple seen from its client.
type flow struct {
	c, s netip.AddrPort
}

func newFlow(cport uint16) flow {
	return flow{
		c: netip.AddrPortFrom(netip.MustParseAddr("10.0.0.1"), cport),
		s: netip.AddrPortFrom(netip.MustParseAddr("10.0.0.2"), 80),
	}
}

// add appends a segment dt after the previous one; fromClient picks the
// direction.
func (s *synth) add(dt time.Duration, f flow, fromClient bool, flags segment.Flags, seq, ack uint32, n int, comment string) {
	s.t += int64(dt)
	seg := segment.Segment{Flags: flags, Seq: segment.Seq(seq), Ack: segment.Seq(ack), Window: 65535, PayloadLen: n, WindowScale: -1}
	if fromClient {
		seg.Src, seg.Dst = f.c, f.s
	} else {
		seg.Src, seg.Dst = f.s, f.c
	}
	s.pkts = append(s.pkts, synthPkt{t: s.t, seg: seg, comment: comment})
}

// handshake and request/response with ISNs 1000 (client) and 5000
// (server): afterwards the client's next seq is 1101, the server's 5201.
func (s *synth) exchange(f flow) {
	const (
		A  = segment.ACK
		PA = segment.PSH | segment.ACK
	)
	s.add(time.Millisecond, f, true, segment.SYN, 1000, 0, 0, "")
	s.add(100*time.Microsecond, f, false, segment.SYN|A, 5000, 1001, 0, "")
	s.add(100*time.Microsecond, f, true, A, 1001, 5001, 0, "")
	s.add(100*time.Microsecond, f, true, PA, 1001, 5001, 100, "")
	s.add(100*time.Microsecond, f, false, PA, 5001, 1101, 200, "")
}

// cleanClose: the client closes first, the server follows, final ACK.
func (s *synth) cleanClose(f flow) {
	const FA = segment.FIN | segment.ACK
	s.add(100*time.Microsecond, f, true, FA, 1101, 5201, 0, "")
	s.add(100*time.Microsecond, f, false, FA, 5201, 1102, 0, "")
	s.add(100*time.Microsecond, f, true, segment.ACK, 1102, 5202, 0, "")
}

// frame renders a segment as an Ethernet frame with payload.
func frame(t testing.TB, seg *segment.Segment) []byte {
	t.Helper()
	tmpl := segment.Template{Tuple: seg.Tuple(), Flags: seg.Flags, Seq: seg.Seq, Ack: seg.Ack, Window: seg.Window}
	mac := net.HardwareAddr{2, 0, 0, 0, 0, 1}
	b, err := segment.Build(nil, mac, mac, &tmpl)
	if err != nil {
		t.Fatal(err)
	}
	if seg.PayloadLen > 0 {
		b = append(b, make([]byte, seg.PayloadLen)...)
		ip := b[segment.EthernetHeaderLen:]
		s := segment.Segment{IPHeaderLen: 20, TCPHeaderLen: 20}
		if ip[0]>>4 == 6 {
			binary.BigEndian.PutUint16(ip[4:6], uint16(len(ip)-40))
			s.IPHeaderLen = 40
		} else {
			binary.BigEndian.PutUint16(ip[2:4], uint16(len(ip)))
		}
		if err := segment.FixChecksums(ip, &s); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

// relink turns an Ethernet frame into the given link type's framing.
func relink(eth []byte, link layers.LinkType) []byte {
	ip := eth[segment.EthernetHeaderLen:]
	switch link {
	case layers.LinkTypeRaw:
		return ip
	case layers.LinkTypeLinuxSLL:
		h := make([]byte, 16, 16+len(ip))
		binary.BigEndian.PutUint16(h[2:], 1) // ARPHRD_ETHER
		binary.BigEndian.PutUint16(h[4:], 6)
		copy(h[6:], eth[6:12])
		binary.BigEndian.PutUint16(h[14:], 0x0800)
		return append(h, ip...)
	case layers.LinkTypeLinuxSLL2:
		h := make([]byte, 20, 20+len(ip))
		binary.BigEndian.PutUint16(h[0:], 0x0800)
		binary.BigEndian.PutUint32(h[4:], 3)
		binary.BigEndian.PutUint16(h[8:], 1)
		h[11] = 6
		copy(h[12:], eth[6:12])
		return append(h, ip...)
	}
	return eth
}

// writePcap writes the capture as a pcap of the given link type.
func (s *synth) writePcap(t testing.TB, path string, link layers.LinkType) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := pcapgo.NewWriterNanos(f)
	if err := w.WriteFileHeader(65535, link); err != nil {
		t.Fatal(err)
	}
	for i := range s.pkts {
		p := &s.pkts[i]
		b := relink(frame(t, &p.seg), link)
		ci := gopacket.CaptureInfo{Timestamp: time.Unix(0, p.t), CaptureLength: len(b), Length: len(b)}
		if err := w.WritePacket(ci, b); err != nil {
			t.Fatal(err)
		}
	}
}

// writePcapng writes the capture as closeduel does: raw IP, one comment
// per frame.
func (s *synth) writePcapng(t testing.TB, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w, err := pcapgo.NewNgWriter(f, layers.LinkTypeRaw)
	if err != nil {
		t.Fatal(err)
	}
	for i := range s.pkts {
		p := &s.pkts[i]
		b := relink(frame(t, &p.seg), layers.LinkTypeRaw)
		ci := gopacket.CaptureInfo{Timestamp: time.Unix(0, p.t), CaptureLength: len(b), Length: len(b)}
		var opts pcapgo.NgPacketOptions
		if p.comment != "" {
			opts.Comments = []string{p.comment}
		}
		if err := w.WritePacketWithOptions(ci, b, opts); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
}

func tempPath(t testing.TB, name string) string { return filepath.Join(t.TempDir(), name) }
